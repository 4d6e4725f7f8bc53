"""Typed records for human-labelled data, and the result of reading a data file.

One record is one labelled judgement an autorater can be asked to reproduce: a preference
between two responses (:class:`PairRecord`), a score for one response
(:class:`ScoreRecord`) or a label for one response (:class:`ClassRecord`). Every record
remembers the file and row it came from so a surprising example can be looked up; rows
that could not be turned into a record become :class:`BadRow` instead of vanishing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from flame_reward.data.splits import in_split
from flame_reward.errors import InvalidInput

PairLabel = Literal["A", "B", "tie"]
PAIR_LABELS: tuple[str, ...] = ("A", "B", "tie")
_FLIP = {"A": "B", "B": "A", "tie": "tie"}
SPLIT_BY: tuple[str, ...] = ("key", "group")


def _digest(parts: Iterable[str | None]) -> str:
    # JSON-encode the parts so ("ab", "c") and ("a", "bc") cannot collide.
    return hashlib.sha1(json.dumps(list(parts), ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PairRecord:
    """A human preference between two responses to one prompt.

    ``label`` is ``"A"`` (``response_a`` is better), ``"B"`` or ``"tie"``. ``row`` is the
    1-based line (JSONL) or array position (JSON) of the example in ``source``.
    ``criteria``: what the humans were asked to judge, when the set says so (HH-RLHF's
    helpful and harmless sets ask opposite things of similar prompts); it becomes the
    pairwise task's ``criteria``, in training and evaluation alike.
    """

    prompt: str
    response_a: str
    response_b: str
    label: str
    dataset: str
    subset: str | None
    source: str
    row: int
    criteria: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """Stable id of the comparison: sha1 of dataset, prompt and the two responses.

        The responses are hashed in sorted order, so :meth:`swapped` keeps the key: a pair
        and its mirror image always land in the same train/dev split. The key identifies
        *what is compared*, not the presentation order.
        """
        return _digest([self.dataset, self.prompt, *sorted((self.response_a, self.response_b))])

    @property
    def group(self) -> str:
        """Id of the prompt (sha1 of dataset and prompt): records sharing it share a prompt.

        Splitting by group keeps every comparison of one prompt on the same side, so a dev
        score is not helped by having seen the prompt in training (PandaLM, for one, asks
        about 170 prompts across its 999 rows).
        """
        return _digest([self.dataset, self.prompt])

    def swapped(self) -> PairRecord:
        """The same judgement with the responses in the other order (``tie`` stays ``tie``)."""
        return dataclasses.replace(
            self, response_a=self.response_b, response_b=self.response_a, label=_FLIP[self.label]
        )


@dataclass(frozen=True)
class ScoreRecord:
    """A human score for one response on one quality dimension.

    ``score`` is the mean of the human annotations, on the inclusive ``scale`` (low, high);
    ``subset`` names the dimension (e.g. ``"coherence"``). ``extra`` holds optional task
    fields such as ``source_text``, ``reference`` or ``criteria`` (all strings).
    """

    prompt: str
    response: str
    score: float
    scale: tuple[float, float]
    dataset: str
    subset: str | None
    source: str
    row: int
    # A dict cannot be hashed; leaving it out of the hash keeps records usable in sets.
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """Stable id of the rated output: sha1 of dataset, prompt, source text and response.

        The dimension (``subset``) is left out on purpose so that every dimension of one
        output falls into the same train/dev split.
        """
        return _digest(
            [self.dataset, self.prompt, self.extra.get("source_text"), self.extra.get("reference"), self.response]
        )

    @property
    def group(self) -> str:
        """Id of the input (dataset, prompt, source text): all outputs for one article share it."""
        return _digest([self.dataset, self.prompt, self.extra.get("source_text")])


@dataclass(frozen=True)
class ClassRecord:
    """A human label for one response, chosen from ``labels`` (e.g. ``("yes", "no")``)."""

    prompt: str
    response: str
    label: str
    labels: tuple[str, ...]
    dataset: str
    subset: str | None
    source: str
    row: int
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """Stable id of the classified text: sha1 of dataset, prompt, source text and response."""
        return _digest([self.dataset, self.prompt, self.extra.get("source_text"), self.response])

    @property
    def group(self) -> str:
        """Id of the input (dataset, prompt, source text): all sentences about one article share it."""
        return _digest([self.dataset, self.prompt, self.extra.get("source_text")])


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read; ``error`` says why (naming the field where one is at fault)."""

    source: str
    row: int
    error: str

    def __str__(self) -> str:
        return f"{self.source}:{self.row}: {self.error}"


R = TypeVar("R", PairRecord, ScoreRecord, ClassRecord)
# typing.Self needs Python 3.11 and the package supports 3.10: a bound TypeVar does the same.
Result = TypeVar("Result", bound="ReadResult[Any]")


@dataclass
class ReadResult(Generic[R]):
    """Records read from one or more files, the rows that failed, and how many rows there were.

    ``total_rows`` counts source rows (JSONL lines with content, JSON array items). For
    pairwise data one row is one record, so ``total_rows == len(records) + len(bad)``; a
    pointwise or classification row can yield several records (one per dimension or per
    summary sentence). Bad rows are kept in every split: they belong to no split, and a
    caller must still see them.
    """

    records: list[R] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    total_rows: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def in_split(self: Result, split: str, dev_fraction: float = 0.2, by: str = "key") -> Result:
        """A copy holding only the records of ``split`` (``"all"``, ``"train"`` or ``"dev"``).

        ``by="key"`` assigns each record by its own key; ``by="group"`` assigns whole
        groups (one prompt, or one source article), so no prompt or article is on both sides.
        """
        if by not in SPLIT_BY:
            raise InvalidInput("split_by", f"must be one of {', '.join(SPLIT_BY)}, got {by!r}")
        kept = [r for r in self.records if in_split(getattr(r, by), split, dev_fraction)]
        return dataclasses.replace(self, records=kept, bad=list(self.bad))

    def extend(self, other: ReadResult[R]) -> None:
        """Append another file's result (used by sets made of several files)."""
        self.records.extend(other.records)
        self.bad.extend(other.bad)
        self.total_rows += other.total_rows


class PairReadResult(ReadResult[PairRecord]):
    """Result of reading pairwise data."""


class ScoreReadResult(ReadResult[ScoreRecord]):
    """Result of reading pointwise (scored) data."""


class ClassReadResult(ReadResult[ClassRecord]):
    """Result of reading classification data."""
