"""Errors that users see as one line: the CLI prints ``str(err)`` and exits non-zero."""


class MespError(Exception):
    """Base class for expected, user-facing failures (bad input, missing model, ...)."""


class DataError(MespError):
    """A trace file cannot be read as given. The message names the file, the line and the problem."""


class WindowError(MespError):
    """No forecasting window fits the data with the requested context and horizon."""


class ModelStoreError(MespError):
    """The model store is missing, unreadable, or a version fails verification."""
