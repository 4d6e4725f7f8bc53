"""Self-Taught Evaluators (Wang et al., 2024, arXiv 2408.02666): a judge improved on
synthetic preference pairs whose winner is known by construction.

One iteration, four resumable steps (see :mod:`flame_reward.selfimprove.steps`):

1. **pairs** (``iter-N/pairs.jsonl``): for each instruction the generator writes a
   "similar but different" instruction (template ``similar_instruction``), then answers
   both. The pair is (original instruction, good = the answer to the original, bad = the
   answer to the modified instruction): a plausible response, but to another question.
   The loser is only ever generated from the modified instruction; a pair is skipped (and
   kept in the file with its reason) when the modified instruction is empty or the same
   as the original, or when the two answers are empty or identical.
2. **judge** (``iter-N/judgments.jsonl``): the current judge samples K rationale-then-
   verdict judgments of every pair in both presentation orders (generation mode of the
   scoring core, temperature sampling). A judgment is kept only when its parsed verdict
   is the right one (the good answer's position); among the correct samples of one pair
   and order at most ``keep_per_order`` are kept (chosen at random, seeded), and with
   ``balance`` the kept verdicts are balanced between A and B so a position-biased judge
   does not train its bias in. Every sample is in the file with ``kept`` and a reason.
3. **train** (``iter-N/adapter/``): LoRA SFT of the judge on the kept judgments with
   the training recipe's trainer (:func:`flame_reward.train.sft.train`); the target is
   the judgment (``Rationale: ...`` then ``Verdict: X``) on the generation-mode prompt.
   Training continues from the current adapter; the next iteration judges with the new one.
4. **eval** (``iter-N/report.json``): pairwise accuracy and position consistency on
   human-labelled dev pairs the loop never sees (:mod:`flame_reward.selfimprove.evaluation`).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from flame_reward.errors import InvalidInput, VerdictParseError
from flame_reward.results import ItemError
from flame_reward.selfimprove.evaluation import (
    compare_iterations,
    dev_figures,
)
from flame_reward.selfimprove.instructions import (
    Instruction,
    iteration_slice,
)
from flame_reward.selfimprove.models import Loader
from flame_reward.selfimprove.report import write_run_report
from flame_reward.selfimprove.sampling import clean_instruction, normalise
from flame_reward.selfimprove.settings import LoopSettings, start_loop
from flame_reward.io import read_jsonl, write_jsonl
from flame_reward.selfimprove.steps import write_json
from flame_reward.selfimprove.templates import Templates

#: ``sampler(texts, num_samples=1, seed=0, desc=...)`` -> one list of replies per text.
Sampler = Callable[..., list[list[str]]]


@dataclass
class SelfTaughtConfig(LoopSettings):
    """The settings of a ``flame-reward self-taught`` run (shared ones: :class:`LoopSettings`)."""

    out: str
    instructions: str = "hh"
    judge: str | None = None
    judge_adapter: str | None = "auto"
    generator: str | None = None
    generator_adapter: str | None = None
    n_instructions: int | None = 16
    samples: int = 4
    generator_temperature: float = 0.7
    keep_per_order: int = 1
    balance: bool = True
    epochs: float = 2.0
    learning_rate: float = 5e-4
    train_batch_size: int = 4

    positive: ClassVar[tuple[str, ...]] = (*LoopSettings.positive, "samples")

    def check(self) -> None:
        super().check()
        if self.keep_per_order < 0:
            raise InvalidInput("--keep-per-order", f"must be >= 0 (0 keeps every correct judgment), got {self.keep_per_order}")
        if self.generator_temperature < 0:
            raise InvalidInput("--generator-temperature", "must be >= 0")


# -- step 1: synthetic pairs ---------------------------------------------------------------
def make_pairs(instructions: Sequence[Instruction], sampler: Sampler, templates: Templates,
               *, seed: int = 0) -> list[dict[str, Any]]:
    """One row per instruction: ``status`` ``ok`` with ``good`` / ``bad``, or ``skipped`` with
    ``reason``. ``good`` answers the original instruction; ``bad`` is generated from the
    modified instruction only, and a pair whose modified instruction or answers cannot tell
    the two apart is skipped."""
    asks = [templates.fill("similar_instruction", instruction=i.text) for i in instructions]
    modified = sampler(asks, num_samples=1, seed=seed, desc="similar instructions") if asks else []
    rows: list[dict[str, Any]] = []
    for inst, replies in zip(instructions, modified):
        raw = replies[0] if replies else ""
        mod = clean_instruction(raw)
        row: dict[str, Any] = {"id": inst.id, "source": inst.source, "instruction": inst.text,
                               "modified_instruction": mod, "modified_raw": raw, "status": "ok", "reason": None}
        if not mod:
            row.update(status="skipped", reason="empty modified instruction")
        elif normalise(mod) == normalise(inst.text):
            row.update(status="skipped", reason="modified instruction is the original")
        rows.append(row)
    live = [r for r in rows if r["status"] == "ok"]
    texts = ([templates.fill("answer", instruction=r["instruction"]) for r in live]
             + [templates.fill("answer", instruction=r["modified_instruction"]) for r in live])
    answers = sampler(texts, num_samples=1, seed=seed + 1, desc="answers") if texts else []
    for k, row in enumerate(live):
        good = answers[k][0] if answers[k] else ""
        bad = answers[len(live) + k][0] if answers[len(live) + k] else ""
        row.update(good=good, bad=bad, bad_from="modified_instruction")
        if not good.strip() or not bad.strip():
            row.update(status="skipped", reason="empty answer")
        elif normalise(good) == normalise(bad):
            row.update(status="skipped", reason="identical answers")
    return rows


# -- step 2: judgments -----------------------------------------------------------------------
ORDERS = (("good-first", "A"), ("good-second", "B"))


def pair_examples(pair: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The pair in both presentation orders: (order, the correct verdict, pairwise example)."""
    out = []
    for order, label in ORDERS:
        a, b = (pair["good"], pair["bad"]) if label == "A" else (pair["bad"], pair["good"])
        out.append((order, label, {"prompt": pair["instruction"], "response_a": a, "response_b": b}))
    return out


_VERDICT_MARK = re.compile(r"verdict\s*[:=]", re.IGNORECASE)
_RATIONALE_LEAD = re.compile(r"^\s*\**\s*rationale\s*\**\s*[:\-]\s*\**\s*", re.IGNORECASE)


def extract_rationale(text: str) -> str:
    """The reasoning of a judgment: the text before its last ``Verdict:`` line (the whole
    text when there is none), without a leading ``Rationale:`` label."""
    marks = list(_VERDICT_MARK.finditer(text))
    body = text[:marks[-1].start()] if marks else text
    return _RATIONALE_LEAD.sub("", body, count=1).strip().rstrip("*").strip()


def sample_judgments(judge: Any, pairs: Sequence[Mapping[str, Any]], *, samples: int, temperature: float,
                     top_p: float, max_new_tokens: int, seed: int, progress: bool = False) -> list[dict[str, Any]]:
    """``samples`` judgments per pair and order from ``judge.generate`` (rationale mode), one
    record per sample with its parsed verdict (or parse error) and whether it is correct."""
    from flame_reward.tasks.registry import get_task_type

    task = get_task_type("pairwise")
    slots = [(p, order, label, ex) for p in pairs for order, label, ex in pair_examples(p)]
    gens = judge.generate("pairwise", [ex for *_, ex in slots], rationale=True, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, num_samples=samples, seed=seed,
                          on_error="return", progress=progress) if slots else []
    records: list[dict[str, Any]] = []
    for (pair, order, label, ex), gen in zip(slots, gens):
        base = {"pair_id": pair["id"], "order": order, "expected": label, "instruction": pair["instruction"],
                "response_a": ex["response_a"], "response_b": ex["response_b"]}
        if isinstance(gen, ItemError):
            records.append({**base, "sample": None, "text": None, "verdict": None, "correct": False,
                            "error": f"{gen.field}: {gen.message}", "rationale": None})
            continue
        for k, text in enumerate(gen.samples):
            try:
                verdict, error = task.parse(text, ex), None
            except VerdictParseError as exc:
                verdict, error = None, str(exc)
            records.append({**base, "sample": k, "text": text, "verdict": verdict, "correct": verdict == label,
                            "error": error, "rationale": extract_rationale(text) if verdict else None})
    return records


def select_judgments(records: Sequence[dict[str, Any]], *, keep_per_order: int = 1, balance: bool = True,
                     seed: int = 0) -> list[dict[str, Any]]:
    """Mark each record ``kept`` (trained on) or not, with a ``reason``.

    Only a judgment whose parsed verdict is the correct one can be kept; of the correct
    judgments of one pair and order, at most ``keep_per_order`` (0: all) are kept, chosen at
    random; with ``balance`` the kept A and B verdicts are made equally many by dropping
    random extras of the more frequent one.
    """
    rng = random.Random(seed)
    out = [dict(r) for r in records]
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, r in enumerate(out):
        r["kept"] = False
        if r.get("verdict") is None:
            r["reason"] = "error" if r.get("sample") is None else "no readable verdict"
        elif not r["correct"]:
            r["reason"] = "wrong verdict"
        elif not (r.get("rationale") or "").strip():
            r["reason"] = "empty rationale"
        else:
            groups.setdefault((r["pair_id"], r["order"]), []).append(i)
    for idx in groups.values():
        rng.shuffle(idx)
        limit = len(idx) if keep_per_order == 0 else keep_per_order
        for j, i in enumerate(idx):
            out[i]["kept"] = j < limit
            out[i]["reason"] = "kept" if j < limit else "extra correct judgment"
    if balance:
        by_label: dict[str, list[int]] = {}
        for i, r in enumerate(out):
            if r["kept"]:
                by_label.setdefault(r["verdict"], []).append(i)
        if len(by_label) < 2:
            for idx in by_label.values():  # only one label kept: nothing to balance it with
                for i in idx:
                    out[i].update(kept=False, reason="label balance")
        else:
            n = min(len(v) for v in by_label.values())
            for idx in by_label.values():
                rng.shuffle(idx)
                for i in idx[n:]:
                    out[i].update(kept=False, reason="label balance")
    return out


def training_items(records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The kept judgments as labelled generation-mode examples for the SFT trainer."""
    from flame_reward.train.examples import LabelledExample

    return [LabelledExample("pairwise", {"prompt": r["instruction"], "response_a": r["response_a"],
                                         "response_b": r["response_b"]},
                            r["verdict"], "self-taught", str(r["pair_id"]), {"order": r["order"]},
                            rationale=r["rationale"])
            for r in records if r.get("kept")]


# -- the loop ------------------------------------------------------------------------------
def _counts(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    samples = [r for r in records if r.get("sample") is not None]
    return {
        "sampled": len(samples),
        "errors": sum(1 for r in records if r.get("sample") is None),
        "parsed": sum(1 for r in samples if r.get("verdict") is not None),
        "correct": sum(1 for r in samples if r.get("correct")),
        "kept": sum(1 for r in records if r.get("kept")),
        "kept_by_verdict": dict(Counter(r["verdict"] for r in records if r.get("kept"))),
        "parsed_by_verdict": dict(Counter(r["verdict"] for r in samples if r.get("verdict") is not None)),
        "reasons": dict(Counter(r.get("reason") for r in records)),
    }


def run_self_taught(cfg: SelfTaughtConfig, loader: Loader | None = None) -> dict[str, Any]:
    """Run (or resume) ``cfg.iterations`` iterations under ``cfg.out``; returns the run report."""
    from flame_reward.train.sft import TrainConfig, train

    start = start_loop(cfg, "self-taught", out=cfg.out, source=cfg.instructions, pool_key="instructions_in_pool", model=cfg.judge,
                       adapter=cfg.judge_adapter, adapter_field="judge_adapter", loader=loader)
    templates, pool, start_adapter, run, models = start.templates, start.pool, start.start_adapter, start.run, start.models
    rows: list[dict[str, Any]] = []

    def evaluate(adapter: str | None) -> dict[str, Any]:
        return {"adapter": adapter, "dev": dev_figures(models.judge(cfg.judge, adapter), cfg.dev_sets,
                                                        cfg.dev_limit, progress=cfg.progress)}

    base = run.step(0, "eval", lambda d: evaluate(start_adapter))
    row0 = {"iteration": 0, "adapter": start_adapter, "dev": base["dev"], "change": compare_iterations(None, base["dev"])}
    write_json(run.iteration(0) / "report.json", row0)
    rows.append(row0)
    adapter = start_adapter
    for n in range(1, cfg.iterations + 1):
        seed = cfg.seed + 1000 * n
        judge_adapter = adapter

        def pairs_step(d: Path, n: int = n, seed: int = seed) -> dict[str, Any]:
            chosen = iteration_slice(pool.items, cfg.n_instructions, n, cfg.seed)
            sampler = models.sampler(cfg.generator, cfg.generator_adapter, max_new_tokens=cfg.max_new_tokens,
                                     temperature=cfg.generator_temperature, top_p=cfg.top_p)
            rows_ = make_pairs(chosen, sampler, templates, seed=seed)
            write_jsonl(d / "pairs.jsonl", rows_)
            return {"instructions": len(chosen), "made": sum(r["status"] == "ok" for r in rows_),
                    "skipped": sum(r["status"] != "ok" for r in rows_),
                    "reasons": dict(Counter(r["reason"] for r in rows_ if r["reason"])),
                    "instruction_source": pool.spec, "instruction_notes": pool.notes}

        def judge_step(d: Path, seed: int = seed, judge_adapter: str | None = judge_adapter) -> dict[str, Any]:
            pairs = [r for r in read_jsonl(d / "pairs.jsonl") if r["status"] == "ok"]
            records = sample_judgments(models.judge(cfg.judge, judge_adapter), pairs, samples=cfg.samples,
                                       temperature=cfg.judge_temperature, top_p=cfg.top_p,
                                       max_new_tokens=cfg.max_new_tokens, seed=seed + 2, progress=cfg.progress)
            records = select_judgments(records, keep_per_order=cfg.keep_per_order, balance=cfg.balance, seed=seed + 3)
            write_jsonl(d / "judgments.jsonl", records)
            return {"judge_adapter": judge_adapter, **_counts(records)}

        def train_step(d: Path, n: int = n, seed: int = seed,
                       judge_adapter: str | None = judge_adapter) -> dict[str, Any]:
            items = training_items(read_jsonl(d / "judgments.jsonl"))
            if not items:
                return {"examples": 0, "skipped": "no judgment kept: the judge is unchanged",
                        "adapter": judge_adapter, "trained": False}
            models.release()
            tcfg = TrainConfig(out=str(d), model=cfg.judge, init_adapter=judge_adapter, max_length=cfg.max_length,
                               epochs=cfg.epochs, max_steps=cfg.max_steps, batch_size=cfg.train_batch_size,
                               learning_rate=cfg.learning_rate,
                               **cfg.lora_shape(),
                               seed=seed + 4, eval_every=0, save_every=50, log_every=1, threads=cfg.threads,
                               device=cfg.device, notes={"method": "self-taught", "iteration": n})
            report = train(tcfg, items, loaded=models.raw(cfg.judge))
            return {"examples": len(items), "skipped_too_long": report["skipped_too_long"],
                    "steps": report["steps"], "train_loss": report["train_loss"],
                    "first_losses": report["first_losses"], "last_losses": report["last_losses"],
                    "train_seconds": report["seconds"], "adapter": report["adapter"], "trained": True}

        run.step(n, "pairs", pairs_step)
        run.step(n, "judge", judge_step)
        trained = run.step(n, "train", train_step)
        adapter = trained["adapter"]
        previous_dev = rows[-1]["dev"]

        def eval_step(d: Path, adapter: str | None = adapter, trained: dict[str, Any] = trained,
                      previous_dev: dict[str, Any] = previous_dev) -> dict[str, Any]:
            if not trained.get("trained"):
                return {"adapter": adapter, "dev": previous_dev, "note": "not trained: figures carried over"}
            return evaluate(adapter)

        ev = run.step(n, "eval", eval_step)
        row = {"iteration": n, "adapter": adapter, "pairs": run.done(n, "pairs"), "judgments": run.done(n, "judge"),
               "train": trained, "dev": ev["dev"], "change": compare_iterations(previous_dev, ev["dev"])}
        write_json(run.iteration(n) / "report.json", row)
        rows.append(row)
    table = write_run_report(run.path, "self-taught", rows, cfg.dev_sets, run.settings)
    return {"rows": rows, "table": table, "out": str(run.path)}


__all__ = ["SelfTaughtConfig", "extract_rationale", "make_pairs", "pair_examples", "run_self_taught",
           "sample_judgments", "select_judgments", "training_items"]
