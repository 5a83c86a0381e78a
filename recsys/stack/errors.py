"""Errors of the stack manager; each carries a message meant for the operator, not a traceback."""


class StackError(RuntimeError):
    """A component could not be prepared, started or reached."""


class MissingPrerequisiteError(StackError):
    """A program the stack needs is not installed; the message names the package."""
