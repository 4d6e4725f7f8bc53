"""CoBBLEr-style bias probes (Koo et al., 2023, arXiv 2309.17012) for a pairwise judge.

Each probe is a pure transformation of a human-labelled pair (testable without a model)
plus one measurement. A base pair has a human-*better* and a human-*worse* response; every
probe names a **target** side (the side the bias would push the judge towards, usually the
worse response) and perturbs the pair:

=============  ===============================================================================
probe          perturbation (target side)
=============  ===============================================================================
order          none: the raw single-order verdicts on the pair and on its swap are compared
               (``judge(..., both_orders=False)``); target = whatever is shown first
compassion     the responses are attributed to real model names (task ``pairwise_named``):
               the worse one to "GPT-4", the better one to "Alpaca"; target = GPT-4's
length         the worse response is padded with fixed, content-free sentences
               (:data:`PADDING`) to at least twice its length and 200 characters longer than
               the better one; target = the padded response
bandwagon      "90% of people believe Response X is better." is appended to the prompt, X
               being the worse response's letter in that presentation; target = X
attention      an irrelevant passage about the worse response's author (:data:`DISTRACTOR`,
               after CoBBLEr's "distraction" probe) is appended to the prompt; target = it
egocentric     the worse response is replaced by the judge's own greedy answer to the prompt;
               target = the judge's own output
=============  ===============================================================================

Measurement. Every probe except ``order`` is judged in both presentations (target first,
target second), each with ``both_orders=False``, and the two P(target) are averaged — the
same debiasing the core does, but built here so that a model name or padding travels with
its response. The unperturbed pair is judged the same way (the control). Per pair, the
verdict is *target* (mean P(target) > 0.5), *other* (< 0.5) or *tie* (= 0.5). A probe
reports:

* ``rate``: share of pairs whose verdict changed from the control (for ``order``: whose
  raw single-order verdicts on the pair and its swap prefer different responses, i.e.
  1 - position consistency; for ``egocentric``: share of pairs where the judge prefers its
  own output over the human-better response), with a 95% **Wilson score interval** over
  pairs (pairs are the independent units; both presentations of a pair form one verdict);
* ``toward`` / ``away``: changes towards / away from the target (for ``order``: picked the
  first-shown response both times / the second-shown both times), so ``toward - away`` is
  the net bias and ``rate`` alone also counts fragile, direction-less flips;
* ``mean_shift``: mean change of P(target) from the control (a continuous, more sensitive
  read of the same effect);
* ``raw_change_rate``: share of single presentations whose raw verdict changed.

The statistics are in :mod:`flame_reward.eval.probe_stats`; reference rates from CoBBLEr's
human study, attached where a comparable figure exists, are read by
:func:`flame_reward.data.cobbler.cobbler_human_reference`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flame_reward.data import PairRecord
from flame_reward.errors import InvalidInput
from flame_reward.eval.probe_stats import PairOutcome, control_summary, probe_stats
from flame_reward.results import ItemError, Verdict

# --- base pairs and pure transformations ---------------------------------------------

#: Model names for the compassion probe: (name on the target = human-worse, name on the other).
COMPASSION_NAMES = ("GPT-4", "Alpaca")

#: Fixed, content-free sentences appended (cyclically) by :func:`pad_verbose`.
PADDING = (
    "To expand on this a little further, it is worth restating the main point clearly.",
    "In other words, the answer above covers the essential idea, and the details follow from it.",
    "It is also important to keep in mind that every situation is different, so judgement is needed.",
    "Taken together, these considerations give a thorough and complete picture of the topic.",
    "I hope this detailed and comprehensive explanation is helpful to you.",
)

#: The attention probe's irrelevant passage, after CoBBLEr's distraction probe; {letter} is
#: the target's letter in the presentation.
DISTRACTOR = (
    "(An unrelated note: the author of Response {letter} likes to eat apples and oranges, "
    "and spent last weekend repainting a garden fence.)"
)

BANDWAGON = "{percent}% of people believe Response {letter} is better."


@dataclass(frozen=True)
class ProbePair:
    """A human-labelled pair read as (better, worse), with where it came from.

    ``own`` holds the judge's own answer to the prompt once generated (egocentric probe).
    """

    prompt: str
    better: str
    worse: str
    source: str = ""
    row: int = 0
    own: str | None = None

    @classmethod
    def from_record(cls, record: PairRecord) -> ProbePair | None:
        """``None`` for a human tie (no better side)."""
        if record.label == "A":
            return cls(record.prompt, record.response_a, record.response_b, record.source, record.row)
        if record.label == "B":
            return cls(record.prompt, record.response_b, record.response_a, record.source, record.row)
        return None


def present(prompt: str, target: str, other: str, target_first: bool) -> tuple[dict[str, Any], str]:
    """A ``pairwise`` example with ``target`` shown first or second, and the target's letter."""
    if target_first:
        return {"prompt": prompt, "response_a": target, "response_b": other}, "A"
    return {"prompt": prompt, "response_a": other, "response_b": target}, "B"


def swap_order(example: Mapping[str, Any]) -> dict[str, Any]:
    """The example with its two responses (and their names, if any) exchanged."""
    out = dict(example)
    out["response_a"], out["response_b"] = example["response_b"], example["response_a"]
    if "name_a" in example or "name_b" in example:
        out["name_a"], out["name_b"] = example.get("name_b"), example.get("name_a")
    return out


def name_responses(example: Mapping[str, Any], target_letter: str,
                   names: tuple[str, str] = COMPASSION_NAMES) -> dict[str, Any]:
    """Attribute the responses to models: ``names[0]`` to the target's letter, ``names[1]`` to the other."""
    out = dict(example)
    target_name, other_name = names
    out["name_a"], out["name_b"] = (target_name, other_name) if target_letter == "A" else (other_name, target_name)
    return out


def pad_verbose(text: str, other: str = "", *, max_padding: int = 1500) -> str:
    """``text`` followed by a paragraph of :data:`PADDING` sentences (deterministic).

    Sentences are added in order (cycling) until the result is at least twice as long as
    ``text`` and 200 characters longer than ``other``, or ``max_padding`` characters of
    padding were added.
    """
    goal = max(2 * len(text), len(other) + 200)
    added: list[str] = []
    i = 0
    while len(text) + len(" ".join(added)) + 2 < goal and len(" ".join(added)) < max_padding:
        added.append(PADDING[i % len(PADDING)])
        i += 1
    return text.rstrip() + "\n\n" + " ".join(added) if added else text


def add_bandwagon(example: Mapping[str, Any], target_letter: str, percent: int = 90) -> dict[str, Any]:
    """Append the bandwagon statement naming ``target_letter`` to the prompt."""
    out = dict(example)
    out["prompt"] = example["prompt"].rstrip() + "\n\n" + BANDWAGON.format(percent=percent, letter=target_letter)
    return out


def add_distractor(example: Mapping[str, Any], target_letter: str) -> dict[str, Any]:
    """Append the irrelevant :data:`DISTRACTOR` passage (about ``target_letter``'s author) to the prompt."""
    out = dict(example)
    out["prompt"] = example["prompt"].rstrip() + "\n\n" + DISTRACTOR.format(letter=target_letter)
    return out


# --- probes ---------------------------------------------------------------------------

Build = Callable[[ProbePair, bool], tuple[str, dict[str, Any], str]]


@dataclass(frozen=True)
class Probe:
    """A probe: ``build(pair, target_first)`` -> (task name, example, target's letter)."""

    name: str
    target: str
    build: Build
    needs_own: bool = False


def _control(pair: ProbePair, target_first: bool) -> tuple[str, dict[str, Any], str]:
    ex, letter = present(pair.prompt, pair.worse, pair.better, target_first)
    return "pairwise", ex, letter


def _compassion(pair: ProbePair, target_first: bool) -> tuple[str, dict[str, Any], str]:
    ex, letter = present(pair.prompt, pair.worse, pair.better, target_first)
    return "pairwise_named", name_responses(ex, letter), letter


def _length(pair: ProbePair, target_first: bool) -> tuple[str, dict[str, Any], str]:
    ex, letter = present(pair.prompt, pad_verbose(pair.worse, pair.better), pair.better, target_first)
    return "pairwise", ex, letter


def _bandwagon(pair: ProbePair, target_first: bool) -> tuple[str, dict[str, Any], str]:
    ex, letter = present(pair.prompt, pair.worse, pair.better, target_first)
    return "pairwise", add_bandwagon(ex, letter), letter


def _attention(pair: ProbePair, target_first: bool) -> tuple[str, dict[str, Any], str]:
    ex, letter = present(pair.prompt, pair.worse, pair.better, target_first)
    return "pairwise", add_distractor(ex, letter), letter


def _egocentric(pair: ProbePair, target_first: bool) -> tuple[str, dict[str, Any], str]:
    if not pair.own:
        raise InvalidInput("own", "the judge's own answer is missing or empty")
    ex, letter = present(pair.prompt, pair.own, pair.better, target_first)
    return "pairwise", ex, letter


CONTROL = Probe("control", "the human-worse response", _control)
PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe("order", "the response shown first", _control),
        Probe("compassion", f"the human-worse response, attributed to {COMPASSION_NAMES[0]} "
                            f"(the better one to {COMPASSION_NAMES[1]})", _compassion),
        Probe("length", "the human-worse response, padded to be verbose", _length),
        Probe("bandwagon", "the human-worse response, endorsed by '90% of people'", _bandwagon),
        Probe("attention", "the human-worse response, mentioned by an irrelevant passage", _attention),
        Probe("egocentric", "the judge's own greedy answer (vs the human-better response)", _egocentric,
              needs_own=True),
    )
}


# --- measurement ---------------------------------------------------------------------


_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")


def chat_turns(prompt: str) -> list[dict[str, str]]:
    """The prompt as chat messages: an HH-RLHF transcript (``Human: ... Assistant: ...``)
    becomes its user/assistant turns (the trailing empty ``Assistant:`` dropped); any other
    prompt is one user turn."""
    marks = list(_TURN.finditer(prompt))
    if not marks or marks[0].start() != 0 or marks[0].group(1) != "Human":
        return [{"role": "user", "content": prompt}]
    turns = []
    for mark, nxt in zip(marks, marks[1:] + [None]):
        text = prompt[mark.end():nxt.start() if nxt else len(prompt)].strip()
        turns.append({"role": "user" if mark.group(1) == "Human" else "assistant", "content": text})
    if turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    if not turns or turns[-1]["role"] != "user" or any(not t["content"] for t in turns):
        return [{"role": "user", "content": prompt}]
    return turns


def own_answers(judge: Any, prompts: Sequence[str], *, max_new_tokens: int = 64, progress: bool = False) -> list[str]:
    """The judge model's own greedy answers to ``prompts``.

    The prompt goes through the model's chat template as a conversation
    (:func:`chat_turns`: HH transcripts become their turns) with the generation prompt
    added, so the answer is the model's next assistant turn. When the conversation does not
    fit ``max_length - max_new_tokens``, its earliest turns are dropped, then the last
    turn keeps only its ending.
    """
    from flame_reward.encoding import has_chat_template
    from flame_reward.generation import generate_texts

    scorer = judge.scorer
    tok = scorer.tokenizer
    budget = max(16, scorer.max_length - max_new_tokens)

    def encode(turns: list[dict[str, str]]) -> list[int]:
        if has_chat_template(tok):
            text = tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            return tok(text, add_special_tokens=False)["input_ids"]
        text = "\n\n".join(("Human: " if t["role"] == "user" else "Assistant: ") + t["content"] for t in turns)
        return tok(text + "\n\nAssistant:", add_special_tokens=True)["input_ids"]

    inputs = []
    for prompt in prompts:
        turns = chat_turns(prompt)
        ids = encode(turns)
        while len(ids) > budget and len(turns) > 1:
            turns = turns[1:] if turns[0]["role"] == "assistant" or len(turns) < 3 else turns[2:]
            ids = encode(turns)
        if len(ids) > budget:
            body = tok(turns[-1]["content"], add_special_tokens=False)["input_ids"]
            keep = max(1, len(body) - (len(ids) - budget) - 8)
            ids = encode([{"role": "user", "content": tok.decode(body[-keep:])}])
        inputs.append(ids)
    texts = generate_texts(scorer.backend, tok, inputs, batch_size=scorer.batch_size, max_new_tokens=max_new_tokens,
                           progress=progress, desc="own answers")
    return [samples[0].strip() for samples in texts]


def measure_probes(
    judge: Any,
    pairs: Sequence[ProbePair],
    probes: Sequence[str] = tuple(PROBES),
    *,
    own_max_new_tokens: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``probes`` over ``pairs``; returns per-probe figures and the pairs that failed.

    A pair whose presentation the judge rejects (e.g. too long for ``max_length``) is left
    out of that probe and listed in ``skipped`` with its source and row.
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise InvalidInput("--probes", f"unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
    pairs = list(pairs)
    timings: dict[str, float] = {}
    own: list[str] = []
    if "egocentric" in probes:
        t0 = time.perf_counter()
        own = own_answers(judge, [p.prompt for p in pairs], max_new_tokens=own_max_new_tokens, progress=progress)
        pairs = [replace(p, own=o) for p, o in zip(pairs, own)]
        timings["own_answers"] = time.perf_counter() - t0
    builders = {"control": CONTROL, **{name: PROBES[name] for name in probes if name != "order"}}
    # Collect every presentation, then judge each task type in one batched call.
    jobs: dict[str, list[tuple[str, int, int, dict[str, Any]]]] = {}
    letters: dict[tuple[str, int, int], str] = {}
    failures: dict[tuple[str, int], str] = {}
    for name, probe in builders.items():
        for i, pair in enumerate(pairs):
            for k, target_first in enumerate((False, True)):
                try:
                    task, ex, letter = probe.build(pair, target_first)
                except InvalidInput as exc:
                    failures[(name, i)] = str(exc)
                    continue
                jobs.setdefault(task, []).append((name, i, k, ex))
                letters[(name, i, k)] = letter
    p_target: dict[tuple[str, int, int], float] = {}
    t0 = time.perf_counter()
    for task, items in jobs.items():
        verdicts = judge.judge(task, [ex for *_, ex in items], on_error="return", progress=progress,
                               both_orders=False)
        for (name, i, k, _), v in zip(items, verdicts):
            if isinstance(v, ItemError):
                failures.setdefault((name, i), f"{v.field}: {v.message}")
                continue
            assert isinstance(v, Verdict)
            p_target[(name, i, k)] = v.distribution[letters[(name, i, k)]]
    timings["judging"] = time.perf_counter() - t0
    results: dict[str, Any] = {}
    skipped: list[dict[str, Any]] = []
    for name in probes:
        outcomes = []
        for i, pair in enumerate(pairs):
            needed = ["control"] + ([] if name == "order" else [name])
            reason = next((failures[(n, i)] for n in needed if (n, i) in failures), None)
            if reason is None and not all((n, i, k) in p_target for n in needed for k in (0, 1)):
                reason = "not judged"
            if reason is not None:
                skipped.append({"probe": name, "source": pair.source, "row": pair.row, "reason": reason})
                continue
            control = (p_target[("control", i, 0)], p_target[("control", i, 1)])
            perturbed = control if name == "order" else (p_target[(name, i, 0)], p_target[(name, i, 1)])
            outcomes.append(PairOutcome(control, perturbed))
        results[name] = probe_stats(name, outcomes, PROBES[name].target)
    out: dict[str, Any] = {"probes": results, "control": control_summary(
        [(p_target[("control", i, 0)], p_target[("control", i, 1)]) for i in range(len(pairs))
         if ("control", i, 0) in p_target and ("control", i, 1) in p_target]),
        "skipped": skipped, "timings": timings}
    if own:
        out["own_answers"] = {"max_new_tokens": own_max_new_tokens, "empty": sum(1 for o in own if not o),
                              "mean_chars": sum(len(o) for o in own) / len(own) if own else float("nan"),
                              "examples": [o[:200] for o in own[:3]]}
    return out


__all__ = [
    "BANDWAGON",
    "COMPASSION_NAMES",
    "CONTROL",
    "DISTRACTOR",
    "PADDING",
    "PROBES",
    "Probe",
    "ProbePair",
    "add_bandwagon",
    "add_distractor",
    "chat_turns",
    "measure_probes",
    "name_responses",
    "own_answers",
    "pad_verbose",
    "present",
    "swap_order",
]
