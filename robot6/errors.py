"""The project's user-facing exception.

A ``Robot6Error`` is a mistake the user can fix (a bad flag, a missing or incompatible checkpoint). Its
message is one line that names the flag or file and says what to do; the CLI prints it and exits with code 2
instead of showing a traceback.
"""


class Robot6Error(Exception):
    """A user-fixable problem; ``str(err)`` is the one-line message shown to the user."""


class ConfigError(Robot6Error):
    """A flag or configuration value is invalid."""


class CheckpointError(Robot6Error):
    """A checkpoint is missing, unreadable, unsafe or incompatible with the current run."""
