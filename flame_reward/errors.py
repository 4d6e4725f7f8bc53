"""Exceptions raised by flame-reward.

Every error a user can act on is a :class:`FlameRewardError`. Input problems name the
field that is wrong so a caller (or the CLI, which prints one line) can point at it.
"""

from __future__ import annotations


class FlameRewardError(Exception):
    """Base class for every error flame-reward raises on purpose."""


class InvalidInput(FlameRewardError, ValueError):
    """A task example (or a data row) is malformed.

    ``field`` names the offending field so the message can be acted on directly.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class UnknownTaskType(FlameRewardError, KeyError):
    """No registered task type has this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(name)

    def __str__(self) -> str:  # KeyError would quote the repr otherwise
        return f"unknown task type {self.name!r}; registered: {', '.join(self.known)}"


class ModelLoadError(FlameRewardError):
    """A model, adapter or tokenizer could not be loaded; the message says which and why."""


class VerdictParseError(FlameRewardError, ValueError):
    """A generated answer contains no verdict the task type can read."""

    def __init__(self, text: str, expected: list[str]) -> None:
        self.text = text
        self.expected = expected
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"no verdict in generated text {shown!r}; expected one of {expected}")


class DataError(FlameRewardError):
    """A data file is missing or unreadable as a whole (bad single rows are reported, not raised)."""
