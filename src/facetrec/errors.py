"""The exception vocabulary shared by every stage.

Each error subclasses a builtin (ValueError, RuntimeError) so that code written against the
builtins keeps working, while callers who care can catch facetrec's own classes.
"""

from __future__ import annotations


class FacetrecError(Exception):
    """Base class of every error facetrec raises on purpose."""


class DataError(FacetrecError, ValueError):
    """Input data is malformed: the message names the file, column, row and the fix."""


class ConfigError(FacetrecError, ValueError):
    """A configuration value or key is wrong: the message lists what is valid."""


class NotFittedError(FacetrecError, RuntimeError):
    """A component was used before ``fit``: the message says what to call."""


class UnknownIdError(FacetrecError, KeyError):
    """An external id is not in a vocabulary: the message names the id and the vocabulary."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class DataWarning(UserWarning):
    """Input was usable but repaired (e.g. items missing from the catalogue were added)."""
