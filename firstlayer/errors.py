"""The project's error for bad input: a one-line message naming the bad value and what is
allowed. Workflow jobs print it as is; anything else is a bug and keeps its traceback."""


class InputError(ValueError):
    """Bad input (a file, a setting, a download that failed); str() is the whole message."""
