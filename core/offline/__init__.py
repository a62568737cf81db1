"""Working without internet: the stand-in world (standin: data and weights laid out as the
real ones are) and the downloads a machine with internet makes ahead (downloads)."""
