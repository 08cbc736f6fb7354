"""Errors a user can cause, reported by the CLI as one line (exit status 2)."""


class UserError(Exception):
    """A problem with the user's input: a path, a file, a config value.

    The message names the input and says how to fix it. The CLI prints it
    without a traceback and exits with status 2.
    """
