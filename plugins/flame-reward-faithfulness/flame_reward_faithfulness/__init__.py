"""flame-reward plugin: summary faithfulness, as a task type, a pair format, a data set and a command.

Every hook below is one flame-reward offers (``flame_reward.hookspecs``); the package
declares this module as an entry point in the ``flame_reward`` group, so installing it is
all it takes for ``flame-reward tasks``, ``eval-pairs``, ``train`` and ``flame-reward
faithfulness`` to see what it adds.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flame_reward import Field, InvalidInput, Summary, TaskType, criteria_line, hookimpl
from flame_reward.data import NamedSet, PairFields, PairFormat, PairReadResult, PairRecord, load_classes

TASK = "summary_faithfulness"
SUMMARIZE = "Summarize the following document faithfully.\n\n"


class SummaryFaithfulnessTask(TaskType):
    """Is every claim in ``summary`` supported by ``source``? Verdicts ``yes``/``no``.

    The score is P(yes): a faithfulness reward for summarisation policies. A summary that
    adds a fact absent from the source is unfaithful even if the fact is true.
    """

    name = TASK
    description = "Is every claim in the summary supported by the source? (yes/no); score = P(yes)."
    fields = (
        Field("source", "The source document the summary is based on.", truncatable=True),
        Field("summary", "The summary (or summary sentence) to check.", truncatable=True),
    )
    default_criteria = (
        "The summary is faithful only if every statement in it is supported by the source; "
        "added, contradicted or distorted facts make it unfaithful, even if they are true elsewhere."
    )

    def instruction(self, example: Mapping[str, Any]) -> str:
        return (
            "You are an expert fact checker. Read the source document and the summary and "
            "decide whether the summary is faithful to the source.\n"
            f"{criteria_line(example, self.default_criteria)}\n"
            "Output field: faithful (yes or no)."
        )

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return ["yes", "no"]

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        label = "yes" if distribution["yes"] >= distribution["no"] else "no"
        return Summary(label, distribution["yes"])


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(SummaryFaithfulnessTask())


# --- a pairwise format and a data set for eval-pairs and train ---------------------------


def _faithfulness_pair(row: Mapping[str, Any]) -> PairFields:
    """A pair of summaries of one document, ``faithful`` and ``unfaithful``: the faithful one wins."""
    for name in ("document", "faithful", "unfaithful"):
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise InvalidInput(name, "missing or empty")
    return PairFields(SUMMARIZE + row["document"], row["faithful"], row["unfaithful"], "A", row.get("subset"))


@hookimpl
def register_pair_formats(register: Callable[[PairFormat], None]) -> None:
    register(PairFormat(
        "faithfulness-pairs",
        "document, faithful, unfaithful (the faithful summary wins)",
        lambda row: "faithful" in row and "unfaithful" in row,
        _faithfulness_pair,
    ))


def qags_pairs(root: Path) -> PairReadResult:
    """Pairs of summary sentences from QAGS: within one summary of one article, a sentence
    the annotators' majority found supported beats one they found unsupported.

    Built on flame-reward's own QAGS reader (``load_classes("qags")``), so its unreadable
    rows stay reported here. Supported and unsupported sentences are paired in summary order;
    a summary with only one kind yields no pair (XSum's one-sentence summaries never do).
    """
    qags = load_classes("qags", data_dir=root)
    sentences: dict[tuple[str, int], dict[str, list[Any]]] = defaultdict(lambda: {"yes": [], "no": []})
    for record in qags.records:
        sentences[(record.source, record.row)][record.label].append(record)
    result = PairReadResult(bad=list(qags.bad), total_rows=qags.total_rows)
    for (source, row), by_label in sentences.items():
        for good, bad in zip(by_label["yes"], by_label["no"]):
            pair = _faithfulness_pair({"document": good.extra["source_text"], "faithful": good.response,
                                       "unfaithful": bad.response, "subset": good.subset})
            result.records.append(PairRecord(pair.prompt, pair.response_a, pair.response_b, pair.label,
                                             dataset="qags-faithfulness", subset=pair.subset, source=source, row=row))
    return result


@hookimpl
def register_datasets(register: Callable[[NamedSet[Any]], None]) -> None:
    register(NamedSet(
        "qags-faithfulness",
        "QAGS summary sentences as pairs: a supported sentence beats an unsupported one of the same summary",
        qags_pairs,
        kind="pairwise",
    ))


# --- a command -----------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    """``text`` cut after each ``.``, ``!`` or ``?`` that a space follows."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def run_faithfulness(args: argparse.Namespace, judge: Any = None) -> int:
    """Judge every summary sentence by sentence; a row's score is its least supported sentence's.

    Every input row comes back, with ``faithfulness`` or an ``error`` naming the field;
    ``judge`` defaults to the one the model options describe.
    """
    from flame_reward.io import RowWriter, read_rows
    from flame_reward.model_options import load_judge

    rows = list(read_rows(args.input))
    errors: dict[int, str] = {}
    examples: list[dict[str, str]] = []
    owner: list[int] = []  # the row index of each example
    for i, row in enumerate(rows):
        data = row.data
        if data is None:
            continue  # written back as the error row the reader made of it
        missing = [n for n in (args.source_field, args.summary_field)
                   if not isinstance(data.get(n), str) or not data[n].strip()]
        if missing:
            errors[i] = f"{missing[0]}: missing or empty (line {row.line})"
            continue
        for sentence in sentences(data[args.summary_field]):
            examples.append({"source": data[args.source_field], "summary": sentence})
            owner.append(i)
    if examples and judge is None:
        judge = load_judge(args)
    verdicts = judge.judge(TASK, examples, on_error="return") if examples else []
    checked: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for i, example, verdict in zip(owner, examples, verdicts):
        if hasattr(verdict, "score"):
            checked[i].append({"sentence": example["summary"], "score": verdict.score})
        else:
            errors.setdefault(i, f"{verdict.field}: {verdict.message} (line {rows[i].line})")
    judged = 0
    with RowWriter(args.output) as out:
        for i, row in enumerate(rows):
            if row.data is None:
                out.write(row.record({}))
            elif i in errors:
                out.write(row.record({"error": errors[i]}))
            else:
                worst = min(checked[i], key=lambda c: c["score"])
                result = {"score": worst["score"], "least_supported": worst["sentence"], "sentences": checked[i]}
                out.write(row.record({"faithfulness": result}))
                judged += 1
    print(f"faithfulness: {judged} rows judged ({len(examples)} sentences), {len(rows) - judged} rows "
          "with errors (kept in the output with 'error')", file=sys.stderr)
    return 0


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from flame_reward.model_options import add_model_options

    help_ = "Check summaries against their sources sentence by sentence (score = least supported sentence's P(yes))."
    p = subparsers.add_parser("faithfulness", help=help_, description=help_)
    p.add_argument("input", help="JSONL or JSON-array file of rows with a source and a summary ('-' for stdin)")
    p.add_argument("-o", "--output", default=None, help="output JSONL (default: stdout)")
    p.add_argument("--source-field", default="source", help="column holding the source document (default source)")
    p.add_argument("--summary-field", default="summary", help="column holding the summary (default summary)")
    add_model_options(p)
    p.set_defaults(fn=run_faithfulness)
