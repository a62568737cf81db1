"""Errors a user can fix: each carries one line that names the problem and the fix."""


class UserError(Exception):
    """Bad input: the CLI prints the message on one line and exits with code 2."""


class ConfigError(UserError):
    """A config value that cannot work (checked before any work starts)."""


class DataNotFoundError(UserError):
    """A data set that is not where the config says."""


class CheckpointError(UserError):
    """A checkpoint that is corrupt or belongs to another run."""
