"""The error type that the CLI turns into a one-line message (no traceback)."""


class MirlError(Exception):
    """A user-facing problem: bad input, a bad file, a bad setting. The message says what to do."""
