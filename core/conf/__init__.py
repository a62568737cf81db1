"""The Hydra presets (composed by core.config.compose); FOLDER is where they lie on disk."""
from pathlib import Path

FOLDER = Path(__file__).parent
