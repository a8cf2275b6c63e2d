"""The one exception a user can cause, so the CLI can print it as a single line and exit 2."""


class ProbekitError(ValueError):
    """Bad input a user can fix: the message names the cause and the fix."""
