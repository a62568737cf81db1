"""Development benchmark, `python -m core.bench` (__main__): figures, data streaming and the
official-style reference loop. Nothing else in the project imports it."""
