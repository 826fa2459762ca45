"""The one exception type the project raises for input a user can fix."""


class DPoserError(ValueError):
    """Bad input, described in a sentence the user can act on (file, line, joint, shape)."""


class Cancelled(Exception):
    """Raised by a progress callback to stop a running task; the task then returns nothing."""
