"""The one exception type the project raises for input a user can fix."""


class DPoserError(ValueError):
    """Bad input, described in a sentence the user can act on (file, line, joint, shape)."""
