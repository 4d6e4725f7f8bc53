"""OpenRLHF's remote-reward contract, answered by the flame-reward judge.

OpenRLHF 0.11 (``openrlhf/utils/agent.py``, ``SingleTurnAgentExecutor``) scores every
sample right after generation with one call carrying
``{"query": [q], "prompts": [p], "labels": [l]}``: ``p`` is the chat-templated prompt,
``q`` the prompt's tokens plus the response's, decoded with special tokens, ``l`` the
dataset's label. It reads back ``{"rewards": [...], "scores": [...], "extra_logs": {...}}``
and, when the call fails five times, leaves the reward ``None``. So every sample gets a
number here: one the judge cannot read gets :attr:`RewardSpec.floor` and is flagged.

This module is the contract only (request -> judge examples -> reply); the HTTP face
(:mod:`flame_reward.sidecar.http`), the Ray Serve deployment and the file mode
(:mod:`flame_reward.integrations.openrlhf_file`) all answer through it.

Modes:

* ``pointwise``: the response (``query`` minus ``prompt``) rated on ``scale``; the reward
  is the expected rating (``normalize``: mapped to [0, 1]). Labels are not used.
* ``reference``: the label is a reference answer; the reward is P(response beats the
  reference), judged pairwise in both presentation orders.

The reply's ``scores`` (OpenRLHF's dynamic-filtering value) are always in [0, 1]: the
normalised rating or the win probability. ``extra_logs`` holds one number per sample
(OpenRLHF logs them as metrics): ``flame_invalid`` (1 when the sample got the floor) and
``flame_truncated`` (1 when the judge had to shorten a response) and ``flame_head`` (1 when
a trained verdict head took part in the sample's verdict, 0 for the raw model's verdict or
a floored sample; OpenRLHF's mean of it is the share of head verdicts). The reply's ``errors``
gives the reason per sample (``null`` when judged); OpenRLHF ignores it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.results import ItemError, Verdict

MODES: tuple[str, ...] = ("pointwise", "reference")

#: Chat-template markup of common model families: ChatML / Llama 3 / Phi (``<|...|>``),
#: Llama 2 / Mistral (``<s>``, ``[INST]``, ``<<SYS>>``), Mistral v7, Gemma.
MARKUP = re.compile(
    r"<\|[^<>|\s]{1,64}\|>|</?s>|<unk>|<bos>|<eos>|<start_of_turn>|<end_of_turn>"
    r"|\[/?INST\]|\[/?SYSTEM_PROMPT\]|<</?SYS>>"
)
_TRAILING_MARKUP = re.compile(rf"(?:\s*(?:{MARKUP.pattern}))+\s*$")
_ROLE_LINE = re.compile(r"\n+(?:assistant|model|gpt|bot)\s*$", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE = "\u2581"  # SentencePiece's visible space, left in text by some decoders


@dataclass(frozen=True)
class RewardSpec:
    """How samples become rewards (see the module docstring).

    ``invalid_reward``: the reward of a sample the judge cannot read (``None``: the lowest
    reward the mode gives, :attr:`floor`). ``strip_markup``: show the judge plain text,
    without the policy's chat-template markup (it would otherwise read ``<|im_start|>``
    and friends as its own structure).
    """

    mode: str = "pointwise"
    scale: tuple[int, int] = (1, 5)
    normalize: bool = False
    criteria: str | None = None
    invalid_reward: float | None = None
    strip_markup: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput("mode", f"must be one of {list(MODES)}, got {self.mode!r}")
        scale = self.scale
        if (not isinstance(scale, (tuple, list)) or len(scale) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
                or not 0 <= scale[0] < scale[1] <= 100):
            raise InvalidInput("scale", f"must be two integers (low, high) with 0 <= low < high <= 100, got {scale!r}")
        object.__setattr__(self, "scale", (int(scale[0]), int(scale[1])))

    @property
    def task(self) -> str:
        return "pointwise" if self.mode == "pointwise" else "pairwise"

    @property
    def floor(self) -> float:
        """The reward of a sample the judge cannot read."""
        if self.invalid_reward is not None:
            return float(self.invalid_reward)
        if self.mode == "pointwise" and not self.normalize:
            return float(self.scale[0])
        return 0.0

    def reward(self, verdict: Verdict) -> tuple[float, float]:
        """(reward, score in [0, 1]) of one verdict."""
        if self.mode == "reference":
            return verdict.score, verdict.score
        low, high = self.scale
        unit = (verdict.score - low) / (high - low)
        return (unit if self.normalize else verdict.score), unit

    def updated(self, options: Mapping[str, Any]) -> RewardSpec:
        """This spec with ``options`` (strings from a URL query or CLI ``key=value``) applied."""
        return replace(self, **parse_options(options)) if options else self


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``RewardSpec`` fields from strings or values: ``mode``, ``scale`` ("1-5" or a pair),
    ``normalize``, ``criteria``, ``invalid_reward``, ``strip_markup``. Unknown keys are
    errors naming the key."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "mode":
            out["mode"] = str(value)
        elif key == "scale":
            if isinstance(value, str):
                low, sep, high = value.partition("-")
                try:
                    value = (int(low), int(high)) if sep else None
                except ValueError:
                    value = None
                if value is None:
                    raise InvalidInput("scale", f"expected LOW-HIGH such as 1-5, got {options[key]!r}")
            out["scale"] = tuple(value)
        elif key in ("normalize", "strip_markup"):
            out[key] = _flag(key, value)
        elif key == "criteria":
            out["criteria"] = str(value) or None
        elif key == "invalid_reward":
            try:
                out["invalid_reward"] = None if value in (None, "") else float(value)
            except (TypeError, ValueError):
                raise InvalidInput("invalid_reward", f"expected a number, got {value!r}") from None
        else:
            raise InvalidInput(key, "unknown reward option; known: mode, scale, normalize, criteria, "
                                    "invalid_reward, strip_markup")
    return out


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(name, f"expected true or false, got {value!r}")


# -- query -> response -----------------------------------------------------------------------
def _blank(ch: str) -> bool:
    return ch.isspace() or ch == _SPACE


def _loose_prefix_end(query: str, prompt: str) -> int | None:
    """Where ``prompt`` ends inside ``query`` when the two differ only in whitespace (a
    tokenizer's decode may add or drop spaces around special tokens); ``None`` otherwise."""
    i = j = 0
    while True:
        while j < len(prompt) and _blank(prompt[j]):
            j += 1
        if j == len(prompt):
            return i
        while i < len(query) and _blank(query[i]):
            i += 1
        if i == len(query) or query[i] != prompt[j]:
            return None
        i += 1
        j += 1


def split_response(query: Any, prompt: Any) -> str:
    """The response inside OpenRLHF's ``query`` (prompt + response, decoded with special
    tokens). Exact prefix first; then a prefix that differs only in whitespace; then the
    same after Unicode NFKC normalisation. A query that does not start with its prompt
    is an error naming ``query``, never a guessed split."""
    if not isinstance(query, str):
        raise InvalidInput("query", f"expected a string, got {type(query).__name__}")
    if not isinstance(prompt, str):
        raise InvalidInput("prompts", f"expected a string, got {type(prompt).__name__}")
    if query.startswith(prompt):
        return query[len(prompt):]
    end = _loose_prefix_end(query, prompt)
    if end is not None:
        return query[end:]
    nq, np_ = unicodedata.normalize("NFKC", query), unicodedata.normalize("NFKC", prompt)
    end = _loose_prefix_end(nq, np_)
    if end is not None:
        return nq[end:]
    at = next((k for k, (a, b) in enumerate(zip(query, prompt)) if a != b), min(len(query), len(prompt)))
    raise InvalidInput("query", f"does not start with its prompt (they differ from character {at}: "
                                f"query has {query[at:at + 20]!r}, prompt has {prompt[at:at + 20]!r}); "
                                "was the prompt truncated to fit --max_len?")


def plain_text(text: str) -> str:
    """``text`` without chat-template markup, blank-line runs or a trailing role header."""
    text = MARKUP.sub("\n", text).replace(_SPACE, " ")
    text = _BLANK_RUNS.sub("\n\n", text).strip()
    return _ROLE_LINE.sub("", text).strip()


def clean_response(text: str, strip_markup: bool = True) -> str:
    """The response without its end-of-turn tokens (and, with ``strip_markup``, any markup)."""
    text = _TRAILING_MARKUP.sub("", text)
    if strip_markup:
        text = MARKUP.sub(" ", text).replace(_SPACE, " ")
    return text.strip()


# -- request -> examples -> reply -------------------------------------------------------------
def parse_request(body: Any, max_items: int = 1024) -> tuple[list[Any], list[Any], list[Any]]:
    """OpenRLHF's JSON body -> (queries, prompts, labels); request-level errors name the field."""
    if not isinstance(body, Mapping):
        raise InvalidInput("body", f"expected a JSON object with query, prompts, labels; got {type(body).__name__}")
    queries = body.get("query")
    if not isinstance(queries, list):
        raise InvalidInput("query", "expected a list of strings (prompt + response)")
    if not queries:
        raise InvalidInput("query", "no items in the request")
    if len(queries) > max_items:
        raise InvalidInput("query", f"{len(queries)} items exceed the server's limit of {max_items} per request")
    prompts = body.get("prompts")
    if not isinstance(prompts, list) or len(prompts) != len(queries):
        raise InvalidInput("prompts", f"expected a list of {len(queries)} prompts, one per query "
                                      f"(flame-reward splits each query into prompt and response)")
    labels = body.get("labels")
    if labels is None:
        labels = [None] * len(queries)
    if not isinstance(labels, list) or len(labels) != len(queries):
        raise InvalidInput("labels", f"expected a list of {len(queries)} labels, one per query")
    return queries, prompts, labels


def build_examples(spec: RewardSpec, queries: Sequence[Any], prompts: Sequence[Any], labels: Sequence[Any]
                   ) -> tuple[list[dict[str, Any]], list[int], dict[int, str]]:
    """Judge examples for the samples that can be judged: (examples, their sample indices,
    ``{index: "field: reason"}`` for the others)."""
    examples: list[dict[str, Any]] = []
    slots: list[int] = []
    errors: dict[int, str] = {}
    for i, (q, p, label) in enumerate(zip(queries, prompts, labels)):
        try:
            response = clean_response(split_response(q, p), spec.strip_markup)
            if not response:
                raise InvalidInput("response", "is empty (nothing after the prompt but end-of-turn tokens)")
            prompt = plain_text(p) if spec.strip_markup else p
            if not prompt.strip():
                raise InvalidInput("prompts", "is empty")
            ex: dict[str, Any] = {"prompt": prompt}
            if spec.criteria:
                ex["criteria"] = spec.criteria
            if spec.mode == "pointwise":
                ex.update(response=response, scale=spec.scale)
            else:
                if not isinstance(label, str) or not label.strip():
                    raise InvalidInput("labels", "reference mode needs the reference answer as the label, "
                                                 f"got {label!r}")
                ex.update(response_a=response, response_b=label.strip())
        except InvalidInput as exc:
            errors[i] = str(exc)
            continue
        examples.append(ex)
        slots.append(i)
    return examples, slots, errors


def make_reply(spec: RewardSpec, n: int, slots: Sequence[int], results: Sequence[Verdict | ItemError],
               errors: Mapping[int, str]) -> dict[str, Any]:
    """OpenRLHF's reply for ``n`` samples: a number for every one (see the module docstring)."""
    if len(results) != len(slots):
        raise ValueError(f"{len(results)} results for {len(slots)} judged samples")
    rewards = [spec.floor] * n
    scores = [0.0] * n
    invalid = [1.0] * n
    truncated = [0.0] * n
    head = [0.0] * n
    reasons: list[str | None] = [None] * n
    for i, reason in errors.items():
        reasons[i] = reason
    for i, result in zip(slots, results):
        if isinstance(result, ItemError):
            reasons[i] = f"{result.field}: {result.message}"
            continue
        rewards[i], scores[i] = spec.reward(result)
        invalid[i] = 0.0
        truncated[i] = 1.0 if result.truncated else 0.0
        head[i] = 1.0 if result.head is not None else 0.0
    return {"rewards": rewards, "scores": scores,
            "extra_logs": {"flame_invalid": invalid, "flame_truncated": truncated, "flame_head": head},
            "errors": reasons}


__all__ = ["MARKUP", "MODES", "RewardSpec", "build_examples", "clean_response", "make_reply", "parse_options",
           "parse_request", "plain_text", "split_response"]
