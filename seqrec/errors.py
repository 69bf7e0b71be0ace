"""The one exception type for mistakes in what the user gave: command lines print its message and exit 2."""


class UserError(ValueError):
    """The user's input (a key, a value, a file, a row) is wrong; the message names it and says what to do.

    A ValueError, so code that validated inputs before keeps its meaning; anything else that escapes an entry point
    is an internal error and keeps its traceback.
    """
