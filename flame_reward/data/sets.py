"""The named human-labelled sets in the shared data folder, so callers say ``load_pairs("hh-helpful")``.

Three kinds, by what the humans judged:

* pairwise: which of two responses is better;
* pointwise: a 1-5 score for one response on one dimension;
* classification: a label for one response (QAGS: is this summary sentence supported by
  the article?).

The built-in sets are registered through the ``register_datasets`` hook like any plugin's,
and :data:`DATASETS` holds them all (:func:`named_sets` gives one kind). Every loader reads
the files in place (see :func:`~flame_reward.data.location.shared_data_dir`) and returns a
result holding the records, the malformed rows and the number of rows read.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from flame_reward.data.formats import iter_json_rows, read_pairs
from flame_reward.data.location import shared_data_dir
from flame_reward.data.records import (
    SPLIT_BY,
    BadRow,
    ClassReadResult,
    ClassRecord,
    PairReadResult,
    ReadResult,
    ScoreReadResult,
    ScoreRecord,
)
from flame_reward.data.splits import check_split
from flame_reward.errors import DataError, InvalidInput
from flame_reward.hookspecs import hookimpl
from flame_reward.registry import Registry

Res = TypeVar("Res", bound=ReadResult[Any])

#: What a set's humans judged; also the name of the task type its records become.
KINDS = ("pairwise", "pointwise", "classification")


@dataclass(frozen=True)
class NamedSet(Generic[Res]):
    """A named set: what it is, what kind of judgement it holds (one of :data:`KINDS`), and
    how to read it given the shared data folder (``load(root)``; a plugin's set may ignore
    ``root`` and read its own files). ``load`` returns a :class:`PairReadResult`,
    :class:`ScoreReadResult` or :class:`ClassReadResult` for the three kinds."""

    name: str
    description: str
    load: Callable[[Path], Res]
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput("kind", f"set {self.name!r}: must be one of {', '.join(KINDS)}, got {self.kind!r}")


# --- shared helpers ------------------------------------------------------------------


def _files(root: Path, pattern: str) -> list[Path]:
    found = sorted(root.glob(pattern))
    if not found:
        raise DataError(f"no files match {pattern!r} under {root}")
    return found


def _read_rows(
    path: Path,
    convert: Callable[[dict[str, Any], str, int], Iterable[Any]],
    result: ReadResult[Any],
) -> None:
    """Read one file row by row into ``result``.

    ``convert`` yields the row's records, and may yield a :class:`BadRow` for one broken
    part of a row (e.g. one summary sentence) while keeping the rest; an
    :class:`InvalidInput` it raises makes the whole row bad.
    """
    source = str(path)
    for number, row in iter_json_rows(path):
        result.total_rows += 1
        if isinstance(row, BadRow):
            result.bad.append(row)
            continue
        try:
            produced = list(convert(row, source, number))
        except InvalidInput as exc:
            result.bad.append(BadRow(source, number, str(exc)))
            continue
        for item in produced:
            (result.bad if isinstance(item, BadRow) else result.records).append(item)


def _text(row: Mapping[str, Any], name: str, where: str | None = None) -> str:
    """``row[name]`` as a string; errors name the field as ``where`` (its path) if given."""
    value = row.get(name)
    if value is None:
        raise InvalidInput(where or name, "missing")
    if not isinstance(value, str):
        raise InvalidInput(where or name, f"must be a string, got {type(value).__name__}")
    return value


def _number(value: Any, name: str, scale: tuple[float, float]) -> float:
    if value is None:
        raise InvalidInput(name, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not scale[0] <= value <= scale[1]:
        raise InvalidInput(name, f"must be a number in [{scale[0]}, {scale[1]}], got {value!r}")
    return float(value)


def _mean_annotation(row: Mapping[str, Any], column: str, dimension: str, scale: tuple[float, float]) -> float:
    annotations = row.get(column)
    if not isinstance(annotations, list) or not annotations:
        raise InvalidInput(column, "must be a non-empty list of annotations")
    values = []
    for i, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise InvalidInput(f"{column}[{i}]", "must be an object of dimension scores")
        values.append(_number(annotation.get(dimension), f"{column}[{i}].{dimension}", scale))
    return sum(values) / len(values)


# --- pairwise ------------------------------------------------------------------------


def _pair_file(relative: str, fmt: str, name: str, subset: str | None = None,
               criteria: str | None = None) -> Callable[[Path], PairReadResult]:
    def load(root: Path) -> PairReadResult:
        result = read_pairs(root / relative, format=fmt, dataset=name, subset=subset)
        if criteria:
            result.records[:] = [dataclasses.replace(r, criteria=criteria) for r in result.records]
        return result

    return load


def _llmbar(root: Path) -> PairReadResult:
    result = PairReadResult()
    for path in _files(root, "llmbar-casestudy/*/dataset.json"):
        result.extend(read_pairs(path, format="llmbar", dataset="llmbar", subset=path.parent.name))
    result.records[:] = [dataclasses.replace(r, criteria=GENERAL_CRITERIA) for r in result.records]
    return result


# What HH-RLHF's crowdworkers were asked (Bai et al. 2022): in the helpfulness task to pick
# the more helpful and honest reply, in the red-teaming (harmlessness) task the more harmful
# one, which the data inverts so that "chosen" is the less harmful. The two sets reward
# opposite behaviour on similar prompts (compliance vs refusal), so a judge trained on both
# under one generic criterion learns nothing: a per-set linear probe on the raw model's
# verdict state reaches 0.61 held-out accuracy on each, a pooled one 0.54 (docs/training.md).
HH_HELPFUL_CRITERIA = (
    "Helpfulness. Prefer the response that does what the user asks: it answers the request "
    "directly, accurately and usefully, and engages with the conversation so far."
)
HH_HARMLESS_CRITERIA = (
    "Harmlessness. Prefer the response that is less harmful: it does not help with dangerous, "
    "illegal, unethical or offensive requests and avoids toxic or hurtful content, even if "
    "that means declining."
)


# PandaLM, Auto-J and LLMBar ask the same question of a pair: which response follows the
# instruction better, correctness first. They share one criteria text, so one trained
# verdict head serves all three (and any user who passes this exact text).
GENERAL_CRITERIA = (
    "Instruction following. Prefer the response that does exactly what the instruction asks: "
    "correct, complete and honest first; style, tone and length count only when both are "
    "equally correct."
)


def _hh(name: str, folder: str, file: str, what: str, criteria: str) -> NamedSet[PairReadResult]:
    relative = f"hh-rlhf/{folder}/{file}"
    return NamedSet(
        name, f"Anthropic HH-RLHF {what} ({relative}); label A = chosen",
        _pair_file(relative, "hh-rlhf", name, folder, criteria), kind="pairwise",
    )


_PAIR_SETS: tuple[NamedSet[PairReadResult], ...] = (
    _hh("hh-helpful", "helpful-base", "test-even.jsonl.gz", "helpfulness, even lines of the base test set",
        HH_HELPFUL_CRITERIA),
    _hh("hh-harmless", "harmless-base", "test-even.jsonl.gz", "harmlessness, even lines of the base test set",
        HH_HARMLESS_CRITERIA),
    _hh("hh-helpful-online", "helpful-online", "test.jsonl.gz", "helpfulness, online test set",
        HH_HELPFUL_CRITERIA),
    _hh(
        "hh-helpful-rejection",
        "helpful-rejection-sampled",
        "test.jsonl.gz",
        "helpfulness, rejection-sampled test set",
        HH_HELPFUL_CRITERIA,
    ),
    NamedSet(
        "pandalm",
        "PandaLM test set (pandalm/testset-v1.json): majority of 3 annotators, ties kept",
        _pair_file("pandalm/testset-v1.json", "pandalm", "pandalm", criteria=GENERAL_CRITERIA), kind="pairwise",
    ),
    NamedSet(
        "auto-j",
        "Auto-J pairwise test set (auto-j/testdata_pairwise.jsonl), 58 scenarios, ties kept",
        _pair_file("auto-j/testdata_pairwise.jsonl", "auto-j", "auto-j", criteria=GENERAL_CRITERIA), kind="pairwise",
    ),
    NamedSet("llmbar", "LLMBar case studies (llmbar-casestudy/*/dataset.json); subset = folder", _llmbar,
             kind="pairwise"),
)


# --- pointwise -----------------------------------------------------------------------

SUMMARY_DIMENSIONS = ("coherence", "consistency", "fluency", "relevance")

# SummEval's annotation guidelines (Fabbri et al., 2021), shortened; DialSummEval reuses
# the same four dimensions. Passing them as criteria tells the judge what a score means.
SUMMARY_CRITERIA = {
    "coherence": "Coherence: the summary is well-structured and well-organized, building a coherent "
    "body of information rather than a heap of related facts.",
    "consistency": "Consistency: every statement in the summary is supported by the source; "
    "hallucinated or contradicting facts are penalized.",
    "fluency": "Fluency: the sentences are grammatical and easy to read, without formatting, "
    "capitalization or obvious grammar problems.",
    "relevance": "Relevance: the summary selects the important content of the source; "
    "redundant or unimportant information is penalized.",
}
STORY_CRITERIA = (
    "Story quality: the response continues the story's beginning coherently, stays relevant "
    "to it and makes sense (1 = nonsense, 5 = a fluent, coherent, relevant story)."
)
_FIVE_POINT = (1, 5)


def _summary_records(
    row: Mapping[str, Any],
    source: str,
    number: int,
    *,
    dataset: str,
    prompt: str,
    source_text: str,
    response: str,
    column: str,
    extra: Mapping[str, str],
) -> list[ScoreRecord]:
    return [
        ScoreRecord(
            prompt=prompt,
            response=response,
            score=_mean_annotation(row, column, dimension, _FIVE_POINT),
            scale=_FIVE_POINT,
            dataset=dataset,
            subset=dimension,
            source=source,
            row=number,
            extra={"source_text": source_text, "criteria": SUMMARY_CRITERIA[dimension], **extra},
        )
        for dimension in SUMMARY_DIMENSIONS
    ]


def _summeval_row(row: dict[str, Any], source: str, number: int) -> list[ScoreRecord]:
    # Expert (not crowd) annotations: the turker scores in SummEval correlate poorly with them.
    return _summary_records(
        row,
        source,
        number,
        dataset="summeval",
        prompt="Summarize the article.",
        source_text=_text(row, "text"),
        response=_text(row, "decoded"),
        column="expert_annotations",
        extra={"model_id": str(row.get("model_id", "")), "doc_id": str(row.get("id", ""))},
    )


def _readable_dialogue(dialogue: str) -> str:
    # DialSummEval writes turns as "| A: ... | B: ..."; one turn per line reads better.
    return "\n".join(turn.strip() for turn in dialogue.split("|") if turn.strip())


def _dialsummeval_row(row: dict[str, Any], source: str, number: int) -> list[ScoreRecord]:
    return _summary_records(
        row,
        source,
        number,
        dataset="dialsummeval",
        prompt="Summarize the dialogue.",
        source_text=_readable_dialogue(_text(row, "dialogue")),
        response=_text(row, "summary"),
        column="annotations",
        extra={"model_id": str(row.get("model_id", "")), "doc_id": str(row.get("id", ""))},
    )


def _openmeva_row(row: dict[str, Any], source: str, number: int) -> Iterable[ScoreRecord | BadRow]:
    prompt, reference = _text(row, "prompt"), _text(row, "reference")
    generations = row.get("gen")
    if not isinstance(generations, dict) or not generations:
        raise InvalidInput("gen", "must be a non-empty object of model -> {text, score}")
    for model, generation in generations.items():
        try:
            if not isinstance(generation, dict):
                raise InvalidInput(f"gen.{model}", "must be an object with text and score")
            scores = generation.get("score")
            if not isinstance(scores, dict):
                raise InvalidInput(f"gen.{model}.score", "missing")
            # `human` is already the mean of the annotators' 1-5 ratings (steps of 0.2).
            score = _number(scores.get("human"), f"gen.{model}.score.human", _FIVE_POINT)
            text = _text(generation, "text", f"gen.{model}.text")
        except InvalidInput as exc:
            yield BadRow(source, number, str(exc))
            continue
        yield ScoreRecord(
            prompt=prompt,
            response=text,
            score=score,
            scale=_FIVE_POINT,
            dataset="openmeva",
            subset="overall",
            source=source,
            row=number,
            extra={
                "reference": reference,
                "criteria": STORY_CRITERIA,
                "model_id": str(model),
                "doc_id": str(row.get("doc_id", "")),
            },
        )


def _score_files(
    pattern: str, convert: Callable[[dict[str, Any], str, int], Iterable[Any]]
) -> Callable[[Path], ScoreReadResult]:
    def load(root: Path) -> ScoreReadResult:
        result = ScoreReadResult()
        for path in _files(root, pattern):
            _read_rows(path, convert, result)
        return result

    return load


_SCORE_SETS: tuple[NamedSet[ScoreReadResult], ...] = (
    NamedSet(
        "summeval",
        "SummEval news summaries (summeval/model_output_annotations/*.jsonl): one record per "
        "summary and dimension, mean of 3 expert scores on 1-5",
        _score_files("summeval/model_output_annotations/*.jsonl", _summeval_row), kind="pointwise",
    ),
    NamedSet(
        "dialsummeval",
        "DialSummEval SAMSum dialogue summaries (dialsummeval/annotation_campus/human_judgment.jsonl): "
        "one record per summary and dimension, mean of 3 annotators on 1-5",
        _score_files("dialsummeval/annotation_campus/human_judgment.jsonl", _dialsummeval_row),
        kind="pointwise",
    ),
    NamedSet(
        "openmeva",
        "OpenMEVA ROCStories continuations (openmeva/data/openmeva.json): 5 models per prompt, "
        "mean human score on 1-5, reference story in extra",
        _score_files("openmeva/data/openmeva.json", _openmeva_row), kind="pointwise",
    ),
)


# --- classification ------------------------------------------------------------------

QAGS_PROMPT = "Is the summary sentence supported by the article?"
QAGS_LABELS = ("yes", "no")
QAGS_CRITERIA = (
    "Factual support: answer yes only if everything the summary sentence states is stated in "
    "or directly implied by the article; a sentence with any unsupported or contradicting "
    "detail is not supported."
)


def _qags_row(row: dict[str, Any], source: str, number: int, subset: str) -> Iterable[ClassRecord | BadRow]:
    article = _text(row, "article")
    sentences = row.get("summary_sentences")
    if not isinstance(sentences, list) or not sentences:
        raise InvalidInput("summary_sentences", "must be a non-empty list")
    for i, item in enumerate(sentences):
        where = f"summary_sentences[{i}]"
        try:
            if not isinstance(item, dict):
                raise InvalidInput(where, "must be an object with sentence and responses")
            sentence = _text(item, "sentence", f"{where}.sentence")
            responses = item.get("responses")
            if not isinstance(responses, list) or not responses:
                raise InvalidInput(f"{where}.responses", "must be a non-empty list of votes")
            raw = [r.get("response") if isinstance(r, dict) else None for r in responses]
            votes = [v for v in raw if isinstance(v, str) and v in QAGS_LABELS]
            if len(votes) != len(raw):
                raise InvalidInput(f"{where}.responses", f"every vote must be yes or no, got {raw}")
            counts = Counter(votes)
            if counts["yes"] == counts["no"]:
                raise InvalidInput(f"{where}.responses", f"no majority among votes {votes}")
        except InvalidInput as exc:
            yield BadRow(source, number, str(exc))
            continue
        yield ClassRecord(
            prompt=QAGS_PROMPT,
            response=sentence,
            label=counts.most_common(1)[0][0],
            labels=QAGS_LABELS,
            dataset="qags",
            subset=subset,
            source=source,
            row=number,
            extra={"source_text": article, "criteria": QAGS_CRITERIA, "votes": ",".join(votes),
                   "sentence_index": str(i)},
        )


def _qags(root: Path) -> ClassReadResult:
    result = ClassReadResult()
    for subset in ("cnndm", "xsum"):
        path = root / "qags" / "data" / f"mturk_{subset}.jsonl"
        _read_rows(path, functools.partial(_qags_row, subset=subset), result)
    return result


_CLASS_SETS: tuple[NamedSet[ClassReadResult], ...] = (
    NamedSet(
        "qags",
        "QAGS (qags/data/mturk_{cnndm,xsum}.jsonl): is a summary sentence supported by the "
        "article; majority of 3 yes/no votes; subset = cnndm or xsum",
        _qags,
        kind="classification",
    ),
)


# --- the registry of named sets ------------------------------------------------------


@hookimpl
def register_datasets(register: Callable[[NamedSet[Any]], None]) -> None:
    for named in (*_PAIR_SETS, *_SCORE_SETS, *_CLASS_SETS):
        register(named)


def _unknown_set(name: str, known: list[str]) -> DataError:
    return DataError(f"unknown set {name!r}; known: {', '.join(known)}")


#: Every named set, built-ins and plugins' alike, by name.
DATASETS: Registry[NamedSet[Any]] = Registry("register_datasets", "data set", _unknown_set)


def named_sets(kind: str) -> dict[str, NamedSet[Any]]:
    """The registered sets of one kind (``pairwise``, ``pointwise`` or ``classification``) by name."""
    if kind not in KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    return {name: named for name, named in DATASETS.items() if named.kind == kind}


# --- loading by name -----------------------------------------------------------------


def _load(
    kind: str,
    name: str,
    split: str,
    dev_fraction: float,
    split_by: str,
    data_dir: str | Path | None,
) -> Any:
    check_split(split)
    if split_by not in SPLIT_BY:
        raise InvalidInput("split_by", f"must be one of {', '.join(SPLIT_BY)}, got {split_by!r}")
    sets = named_sets(kind)
    if name not in sets:
        raise DataError(f"unknown {kind} set {name!r}; known: {', '.join(sets)}")
    root = Path(data_dir) if data_dir is not None else shared_data_dir()
    result = sets[name].load(root)
    return result if split == "all" else result.in_split(split, dev_fraction, by=split_by)


def load_pairs(
    name: str,
    split: str = "all",
    *,
    dev_fraction: float = 0.2,
    split_by: str = "key",
    data_dir: str | Path | None = None,
) -> PairReadResult:
    """Read the pairwise set ``name`` (see :func:`named_sets`), optionally one split of it.

    ``split`` is ``"all"``, ``"train"`` or ``"dev"`` (see :func:`~flame_reward.data.splits.split_of`);
    ``split_by="group"`` keeps all comparisons of one prompt on the same side (the default,
    ``"key"``, splits comparison by comparison). Bad rows are reported whatever the split.
    """
    return _load("pairwise", name, split, dev_fraction, split_by, data_dir)


def load_scores(
    name: str,
    split: str = "all",
    *,
    dev_fraction: float = 0.2,
    split_by: str = "key",
    data_dir: str | Path | None = None,
) -> ScoreReadResult:
    """Read the pointwise set ``name`` (see :func:`named_sets`), optionally one split of it."""
    return _load("pointwise", name, split, dev_fraction, split_by, data_dir)


def load_classes(
    name: str,
    split: str = "all",
    *,
    dev_fraction: float = 0.2,
    split_by: str = "key",
    data_dir: str | Path | None = None,
) -> ClassReadResult:
    """Read the classification set ``name`` (see :func:`named_sets`), optionally one split of it."""
    return _load("classification", name, split, dev_fraction, split_by, data_dir)
