"""Meta-Rewarding language models (Wu et al., 2024, arXiv 2407.19594): one model as actor,
judge and meta-judge, trained with DPO on its own preferences.

One iteration, six resumable steps (see :mod:`flame_reward.selfimprove.steps`):

1. **actor** (``iter-N/responses.jsonl``): ``responses`` sampled answers per prompt.
2. **judge** (``iter-N/judgments.jsonl``): each response rated on a 1-5 scale by the
   same model in generation mode (``pointwise`` task with a rationale, criteria template
   ``judge_criteria``), ``judge_samples`` samples each; the response's score is the mean of
   the samples whose rating could be read (none readable: no score).
3. **meta** (``iter-N/meta.jsonl``): for each response with two readable judgments that
   disagree, the judgment with the highest and the one with the lowest rating are compared
   by the same model as meta-judge: a ``pairwise`` task whose prompt is the judge's task
   (template ``meta_judge_prompt``), whose two responses are the judgments and whose
   criteria say what makes a judgment good (template ``meta_judge_criteria``). The
   verdict comes from the scoring core in both presentation orders (P(first judgment
   better), averaged), so the meta-judge's own position bias cancels.
4. **pairs** (``iter-N/pairs.jsonl``): actor pairs with the length control of
   :func:`actor_pair` and judge pairs from the meta-judge (:func:`judge_pair`).
5. **train** (``iter-N/adapter/``): DPO on both kinds of pairs with TRL's ``DPOTrainer``
   and LoRA (:mod:`flame_reward.selfimprove.dpo`), continuing from the current adapter.
6. **eval** (``iter-N/report.json``, ``iter-N/meta_agreement.jsonl``): the judge's pairwise
   accuracy and position consistency on human-labelled dev pairs, and the meta-judge's
   agreement with the human labels (:func:`meta_agreement`).

**Length control** (actor pairs). Responses with a score are split by score: the *top
tier* holds those within ``tier`` x (max - min) of the best score, the *bottom tier* those
within the same distance of the worst. Chosen = the shortest response (in characters) of
the top tier; rejected = the longest of the bottom tier (as in the paper, so that among
near-equal scores DPO pushes towards brevity, not length). A prompt gives no pair when
fewer than two responses have a score or all scores are equal, and the pair is dropped
when the chosen response is still more than ``max_length_ratio`` times as long as the
rejected one. Judge pairs get the same length-ratio check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput, VerdictParseError
from flame_reward.results import ItemError, Verdict
from flame_reward.selfimprove.evaluation import (
    compare_iterations,
    dev_figures,
)
from flame_reward.selfimprove.instructions import iteration_slice
from flame_reward.selfimprove.models import Loader
from flame_reward.selfimprove.report import write_run_report
from flame_reward.selfimprove.settings import LoopSettings, start_loop
from flame_reward.io import read_jsonl, write_jsonl
from flame_reward.selfimprove.steps import write_json
from flame_reward.selfimprove.templates import Templates

SCALE = (1, 5)


@dataclass
class MetaRewardConfig(LoopSettings):
    """The settings of a ``flame-reward meta-reward`` run (shared ones: :class:`LoopSettings`)."""

    out: str
    prompts: str = "hh"
    model: str | None = None
    adapter: str | None = "auto"
    n_prompts: int | None = 16
    responses: int = 4
    judge_samples: int = 3
    actor_temperature: float = 0.8
    tier: float = 0.25
    max_length_ratio: float | None = 2.0
    meta_margin: float = 0.0
    meta_eval_pairs: int = 8
    epochs: float = 1.0
    learning_rate: float = 5e-5
    beta: float = 0.1
    train_batch_size: int = 2

    def check(self) -> None:
        super().check()
        if self.responses < 2:
            raise InvalidInput("--responses", f"a preference pair needs >= 2 responses per prompt, got {self.responses}")
        if self.judge_samples < 1:
            raise InvalidInput("--judge-samples", f"must be >= 1, got {self.judge_samples}")
        if not 0.0 <= self.tier < 0.5:
            raise InvalidInput("--tier", f"must be in [0, 0.5) so the top and bottom tiers never overlap, got {self.tier}")
        if self.max_length_ratio is not None and self.max_length_ratio <= 0:
            raise InvalidInput("--max-length-ratio", f"must be > 0, got {self.max_length_ratio}")
        if not 0.0 <= self.meta_margin < 0.5:
            raise InvalidInput("--meta-margin", f"must be in [0, 0.5), got {self.meta_margin}")
        if self.meta_eval_pairs < 0:
            raise InvalidInput("--meta-eval-pairs", f"must be >= 0, got {self.meta_eval_pairs}")


# -- pair construction (pure) ----------------------------------------------------------------
@dataclass(frozen=True)
class PairChoice:
    """Indices of the chosen and rejected responses, or why there is no pair."""

    chosen: int | None
    rejected: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.chosen is not None


def actor_pair(responses: Sequence[str], scores: Sequence[float | None], *, tier: float = 0.25,
               max_length_ratio: float | None = 2.0) -> PairChoice:
    """The length-controlled actor pair of one prompt (see the module docstring)."""
    if len(responses) != len(scores):
        raise ValueError("one score per response")
    scored = [i for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return PairChoice(None, None, "fewer than two scored responses")
    top = max(scores[i] for i in scored)  # type: ignore[type-var]
    low = min(scores[i] for i in scored)  # type: ignore[type-var]
    if top <= low:
        return PairChoice(None, None, "all responses scored the same")
    width = tier * (top - low)
    top_tier = [i for i in scored if scores[i] >= top - width]  # type: ignore[operator]
    bottom_tier = [i for i in scored if scores[i] <= low + width]  # type: ignore[operator]
    chosen = min(top_tier, key=lambda i: (len(responses[i]), i))
    rejected = max(bottom_tier, key=lambda i: (len(responses[i]), -i))
    if max_length_ratio is not None and len(responses[chosen]) > max_length_ratio * max(1, len(responses[rejected])):
        return PairChoice(None, None, "chosen much longer than rejected")
    return PairChoice(chosen, rejected, "ok")


def judge_pair(p_first_better: float, first: str, second: str, *, margin: float = 0.0,
               max_length_ratio: float | None = 2.0) -> tuple[str, str] | str:
    """(chosen, rejected) judgments from the meta-judge's P(first judgment better), or the
    reason there is no pair (undecided within ``margin`` of 0.5, or length control)."""
    if p_first_better > 0.5 + margin:
        chosen, rejected = first, second
    elif p_first_better < 0.5 - margin:
        chosen, rejected = second, first
    else:
        return "meta-judge undecided"
    if max_length_ratio is not None and len(chosen) > max_length_ratio * max(1, len(rejected)):
        return "chosen much longer than rejected"
    return chosen, rejected


# -- roles -----------------------------------------------------------------------------------
def judge_example(prompt: str, response: str, templates: Templates) -> dict[str, Any]:
    return {"prompt": prompt, "response": response, "scale": list(SCALE), "criteria": templates.text("judge_criteria")}


def judge_task_text(task_name: str, example: Mapping[str, Any]) -> str:
    """The FLAMe text the judge saw for ``example`` in generation mode (no chat template)."""
    from flame_reward.tasks.registry import get_task_type

    task = get_task_type(task_name)
    return task.render(task.validate(example), rationale=True).text()


def meta_example(judge_task: str, first: str, second: str, templates: Templates) -> dict[str, Any]:
    """The meta-judge's pairwise example: which of two judgments of ``judge_task`` is better."""
    return {"prompt": templates.fill("meta_judge_prompt", task=judge_task), "response_a": first,
            "response_b": second, "criteria": templates.text("meta_judge_criteria")}


def score_responses(judge: Any, items: Sequence[Mapping[str, Any]], templates: Templates, *, samples: int,
                    temperature: float, top_p: float, max_new_tokens: int, seed: int,
                    progress: bool = False) -> list[dict[str, Any]]:
    """One record per response: its sampled judgments (text, rating or parse error) and
    ``score`` = mean of the readable ratings (None when none could be read)."""
    from flame_reward.tasks.registry import get_task_type

    task = get_task_type("pointwise")
    examples = [judge_example(it["prompt"], it["response"], templates) for it in items]
    gens = judge.generate("pointwise", examples, rationale=True, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, num_samples=samples, seed=seed,
                          on_error="return", progress=progress) if examples else []
    out = []
    for it, ex, gen in zip(items, examples, gens):
        rec: dict[str, Any] = {**it, "judgments": [], "score": None, "error": None}
        if isinstance(gen, ItemError):
            rec["error"] = f"{gen.field}: {gen.message}"
            out.append(rec)
            continue
        valid = task.validate(ex)
        for text in gen.samples:
            try:
                rating: int | None = int(task.parse(text, valid))
                err = None
            except VerdictParseError as exc:
                rating, err = None, str(exc)
            rec["judgments"].append({"text": text, "rating": rating, "error": err})
        ratings = [j["rating"] for j in rec["judgments"] if j["rating"] is not None]
        rec["score"] = sum(ratings) / len(ratings) if ratings else None
        out.append(rec)
    return out


def meta_candidates(scored: Sequence[Mapping[str, Any]]) -> list[tuple[int, int, int]]:
    """(record, first judgment, second judgment): for every response with two readable
    judgments that disagree, the highest-rated and the lowest-rated (first of each)."""
    out = []
    for r, rec in enumerate(scored):
        rated = [(j["rating"], k) for k, j in enumerate(rec.get("judgments") or []) if j.get("rating") is not None]
        if len({x for x, _ in rated}) < 2:
            continue
        hi = max(rated, key=lambda t: (t[0], -t[1]))[1]
        lo = min(rated, key=lambda t: (t[0], t[1]))[1]
        out.append((r, hi, lo))
    return out


def _p_first(v: Verdict) -> float:
    return float(v.score)


def meta_judge(judge: Any, scored: Sequence[Mapping[str, Any]], templates: Templates,
               *, progress: bool = False) -> list[dict[str, Any]]:
    """The meta-judge's verdict on each :func:`meta_candidates` pair (scoring core, both orders)."""
    cands = meta_candidates(scored)
    examples = []
    for r, hi, lo in cands:
        rec = scored[r]
        task_text = judge_task_text("pointwise", judge_example(rec["prompt"], rec["response"], templates))
        examples.append(meta_example(task_text, rec["judgments"][hi]["text"], rec["judgments"][lo]["text"], templates))
    verdicts = judge.judge("pairwise", examples, on_error="return", progress=progress) if examples else []
    out = []
    for (r, hi, lo), ex, v in zip(cands, examples, verdicts):
        row = {"prompt_id": scored[r]["prompt_id"], "response": scored[r]["index"], "first": hi, "second": lo,
               "first_rating": scored[r]["judgments"][hi]["rating"], "second_rating": scored[r]["judgments"][lo]["rating"],
               "judge_task": judge_task_text("pointwise", judge_example(scored[r]["prompt"], scored[r]["response"], templates))}
        if isinstance(v, ItemError):
            row.update(p_first_better=None, error=f"{v.field}: {v.message}")
        else:
            row.update(p_first_better=_p_first(v), consistent=v.consistent, orders=list(v.orders), error=None)
        out.append(row)
    return out


def build_pairs(responses: Sequence[Mapping[str, Any]], scored: Sequence[Mapping[str, Any]],
                metas: Sequence[Mapping[str, Any]], *, prompt_text: Any, judge_prompt_text: Any,
                tier: float, max_length_ratio: float | None, margin: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DPO pairs (actor and judge) and the counts of pairs made and skipped per reason.

    ``prompt_text(instruction)`` / ``judge_prompt_text(task_text)``: the full prompt strings
    (chat template applied) the actor and the judge saw.
    """
    by_prompt: dict[str, list[Mapping[str, Any]]] = {}
    for rec in scored:
        by_prompt.setdefault(rec["prompt_id"], []).append(rec)
    pairs: list[dict[str, Any]] = []
    actor_reasons: Counter[str] = Counter()
    for pid, recs in by_prompt.items():
        recs = sorted(recs, key=lambda x: x["index"])
        choice = actor_pair([r["response"] for r in recs], [r["score"] for r in recs], tier=tier,
                            max_length_ratio=max_length_ratio)
        actor_reasons[choice.reason] += 1
        if choice.ok:
            c, j = recs[choice.chosen], recs[choice.rejected]  # type: ignore[index]
            pairs.append({"kind": "actor", "prompt_id": pid, "prompt": prompt_text(c["prompt"]),
                          "chosen": c["response"], "rejected": j["response"],
                          "chosen_score": c["score"], "rejected_score": j["score"]})
    judge_reasons: Counter[str] = Counter()
    for m in metas:
        if m.get("p_first_better") is None:
            judge_reasons["meta-judge error"] += 1
            continue
        rec = next(r for r in scored if r["prompt_id"] == m["prompt_id"] and r["index"] == m["response"])
        first, second = rec["judgments"][m["first"]]["text"], rec["judgments"][m["second"]]["text"]
        got = judge_pair(m["p_first_better"], first, second, margin=margin, max_length_ratio=max_length_ratio)
        if isinstance(got, str):
            judge_reasons[got] += 1
            continue
        judge_reasons["ok"] += 1
        pairs.append({"kind": "judge", "prompt_id": m["prompt_id"], "response": m["response"],
                      "prompt": judge_prompt_text(m["judge_task"]), "chosen": got[0], "rejected": got[1],
                      "p_first_better": m["p_first_better"]})
    counts = {"actor_pairs": sum(p["kind"] == "actor" for p in pairs),
              "judge_pairs": sum(p["kind"] == "judge" for p in pairs),
              "actor_reasons": dict(actor_reasons), "judge_reasons": dict(judge_reasons)}
    return pairs, counts


# -- meta-judge agreement with human labels ----------------------------------------------------
def meta_agreement(judge: Any, sets: Sequence[str], per_set: int, templates: Templates, *, samples: int,
                   temperature: float, top_p: float, max_new_tokens: int, seed: int,
                   progress: bool = False, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Does the meta-judge prefer judgments that agree with people?

    On the first ``per_set`` dev pairs of each set (alternately as given and swapped), the
    judge samples rationale-then-verdict pairwise judgments; a judgment is *correct* when
    its verdict names the human-preferred response. For every presentation with both a
    correct and an incorrect judgment, the meta-judge compares the two (scoring core, both
    orders); ``agreement`` is the share of comparisons where it prefers the correct one.
    ``details``, when given, receives one row per presentation (its verdicts and comparison).
    """
    from flame_reward.data import load_pairs
    from flame_reward.tasks.registry import get_task_type

    if per_set < 1:
        return {"compared": 0, "agreement": None, "presentations": 0, "note": "disabled"}
    task = get_task_type("pairwise")
    shows: list[tuple[str, dict[str, Any], str]] = []
    for name in sets:
        records = [r for r in load_pairs(name, split="dev").records if r.label in ("A", "B")][:per_set]
        for k, r in enumerate(records):
            rr = r if k % 2 == 0 else r.swapped()
            shows.append((name, {"prompt": rr.prompt, "response_a": rr.response_a, "response_b": rr.response_b},
                          rr.label))
    gens = judge.generate("pairwise", [ex for _, ex, _ in shows], rationale=True, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, num_samples=samples, seed=seed,
                          on_error="return", progress=progress) if shows else []
    examples, truth, rows = [], [], []
    parsed = mixed = n_right = 0
    for k, ((name, ex, label), gen) in enumerate(zip(shows, gens)):
        row: dict[str, Any] = {"set": name, "human": label, "verdicts": [], "compared": None}
        rows.append(row)
        if isinstance(gen, ItemError):
            row["error"] = f"{gen.field}: {gen.message}"
            continue
        right, wrong = [], []
        for text in gen.samples:
            try:
                verdict = task.parse(text, ex)
            except VerdictParseError:
                row["verdicts"].append(None)
                continue
            row["verdicts"].append(verdict)
            parsed += 1
            (right if verdict == label else wrong).append(text)
        n_right += len(right)
        if right and wrong:
            row["compared"] = len(examples)
            mixed += 1
            task_text = task.render(task.validate(ex), rationale=True).text()
            first_is_right = k % 2 == 0
            a, b = (right[0], wrong[0]) if first_is_right else (wrong[0], right[0])
            examples.append(meta_example(task_text, a, b, templates))
            truth.append((name, first_is_right))
    verdicts = judge.judge("pairwise", examples, on_error="return") if examples else []
    if details is not None:
        for row in rows:
            v = verdicts[row["compared"]] if row["compared"] is not None else None
            if isinstance(v, Verdict):
                first_is_right = truth[row["compared"]][1]
                row["p_right_better"] = v.score if first_is_right else 1.0 - v.score
            details.append(row)
    agree = compared = consistent = 0
    per_set_counts: dict[str, list[int]] = {}
    for (name, first_is_right), v in zip(truth, verdicts):
        if isinstance(v, ItemError):
            continue
        compared += 1
        ok = (v.score > 0.5) == first_is_right and v.score != 0.5
        agree += ok
        consistent += bool(v.consistent)
        c = per_set_counts.setdefault(name, [0, 0])
        c[0] += ok
        c[1] += 1
    return {"presentations": len(shows), "judgments_sampled": len(shows) * samples, "judgments_parsed": parsed,
            "judgments_right": n_right, "with_right_and_wrong": mixed, "compared": compared,
            "agreement": agree / compared if compared else None,
            "meta_position_consistency": consistent / compared if compared else None,
            "sets": {n: {"compared": c[1], "agreement": c[0] / c[1]} for n, c in per_set_counts.items()}}


# -- the loop ------------------------------------------------------------------------------
def run_meta_reward(cfg: MetaRewardConfig, loader: Loader | None = None) -> dict[str, Any]:
    """Run (or resume) ``cfg.iterations`` iterations under ``cfg.out``; returns the run report."""
    from flame_reward.encoding import prompt_string
    from flame_reward.selfimprove.dpo import DPOTrainConfig, train_dpo

    start = start_loop(cfg, "meta-reward", out=cfg.out, source=cfg.prompts, pool_key="prompts_in_pool", model=cfg.model,
                       adapter=cfg.adapter, adapter_field="adapter", loader=loader)
    templates, pool, start_adapter, run, models = start.templates, start.pool, start.start_adapter, start.run, start.models
    rows: list[dict[str, Any]] = []

    def evaluate(adapter: str | None, seed: int, d: Path) -> dict[str, Any]:
        judge = models.judge(cfg.model, adapter)
        dev = dev_figures(judge, cfg.dev_sets, cfg.dev_limit, progress=cfg.progress)
        details: list[dict[str, Any]] = []
        agreement = meta_agreement(judge, cfg.dev_sets, cfg.meta_eval_pairs, templates, samples=max(2, cfg.judge_samples),
                                   temperature=cfg.judge_temperature, top_p=cfg.top_p,
                                   max_new_tokens=cfg.max_new_tokens, seed=seed, progress=cfg.progress,
                                   details=details)
        write_jsonl(d / "meta_agreement.jsonl", details)
        return {"adapter": adapter, "dev": dev, "meta_agreement": agreement}

    base = run.step(0, "eval", lambda d: evaluate(start_adapter, cfg.seed + 7, d))
    row0 = {"iteration": 0, "adapter": start_adapter, "dev": base["dev"], "meta_agreement": base["meta_agreement"],
            "change": compare_iterations(None, base["dev"])}
    write_json(run.iteration(0) / "report.json", row0)
    rows.append(row0)
    adapter = start_adapter
    for n in range(1, cfg.iterations + 1):
        seed = cfg.seed + 1000 * n
        current = adapter

        def actor_step(d: Path, n: int = n, seed: int = seed, current: str | None = current) -> dict[str, Any]:
            chosen = iteration_slice(pool.items, cfg.n_prompts, n, cfg.seed)
            sampler = models.sampler(cfg.model, current, max_new_tokens=cfg.max_new_tokens,
                                     temperature=cfg.actor_temperature, top_p=cfg.top_p)
            texts = [templates.fill("answer", instruction=i.text) for i in chosen]
            outs = sampler(texts, num_samples=cfg.responses, seed=seed, desc="actor responses")
            rows_ = [{"prompt_id": inst.id, "prompt": inst.text, "index": k, "response": resp}
                     for inst, resp_list in zip(chosen, outs) for k, resp in enumerate(resp_list)]
            write_jsonl(d / "responses.jsonl", rows_)
            return {"prompts": len(chosen), "responses": len(rows_),
                    "empty_responses": sum(1 for r in rows_ if not r["response"].strip()),
                    "prompt_source": pool.spec, "prompt_notes": pool.notes}

        def judge_step(d: Path, seed: int = seed, current: str | None = current) -> dict[str, Any]:
            items = [r for r in read_jsonl(d / "responses.jsonl") if r["response"].strip()]
            scored = score_responses(models.judge(cfg.model, current), items, templates, samples=cfg.judge_samples,
                                     temperature=cfg.judge_temperature, top_p=cfg.top_p,
                                     max_new_tokens=cfg.max_new_tokens, seed=seed + 1, progress=cfg.progress)
            write_jsonl(d / "judgments.jsonl", scored)
            ratings = [j["rating"] for r in scored for j in r["judgments"]]
            return {"responses_judged": len(scored), "responses_scored": sum(r["score"] is not None for r in scored),
                    "judgments": len(ratings), "judgments_parsed": sum(x is not None for x in ratings),
                    "ratings": dict(Counter(str(x) for x in ratings if x is not None)),
                    "errors": sum(1 for r in scored if r["error"])}

        def meta_step(d: Path, current: str | None = current) -> dict[str, Any]:
            scored = read_jsonl(d / "judgments.jsonl")
            metas = meta_judge(models.judge(cfg.model, current), scored, templates, progress=cfg.progress)
            write_jsonl(d / "meta.jsonl", metas)
            decided = [m for m in metas if m.get("p_first_better") is not None]
            return {"compared": len(metas), "errors": len(metas) - len(decided),
                    "prefers_higher_rating": sum(m["p_first_better"] > 0.5 for m in decided),
                    "consistent": sum(bool(m.get("consistent")) for m in decided)}

        def pairs_step(d: Path, current: str | None = current) -> dict[str, Any]:
            judge = models.judge(cfg.model, current)
            tok = judge.scorer.tokenizer
            pairs, counts = build_pairs(
                read_jsonl(d / "responses.jsonl"), read_jsonl(d / "judgments.jsonl"), read_jsonl(d / "meta.jsonl"),
                prompt_text=lambda text: prompt_string(tok, templates.fill("answer", instruction=text)),
                judge_prompt_text=lambda task_text: prompt_string(tok, task_text),
                tier=cfg.tier, max_length_ratio=cfg.max_length_ratio, margin=cfg.meta_margin)
            write_jsonl(d / "pairs.jsonl", pairs)
            return counts

        def train_step(d: Path, seed: int = seed, current: str | None = current) -> dict[str, Any]:
            pairs = read_jsonl(d / "pairs.jsonl")
            if not pairs:
                return {"pairs": 0, "skipped": "no preference pair: the model is unchanged", "adapter": current,
                        "trained": False}
            models.release()
            # The judge's prompts fill up to max_length with the generation budget included.
            dcfg = DPOTrainConfig(out=str(d), init_adapter=current, max_length=cfg.max_length + cfg.max_new_tokens,
                                  epochs=cfg.epochs, max_steps=cfg.max_steps,
                                  batch_size=cfg.train_batch_size, learning_rate=cfg.learning_rate, beta=cfg.beta,
                                  **cfg.lora_shape(),
                                  seed=seed + 4, threads=cfg.threads)
            report = train_dpo(dcfg, pairs, models.raw(cfg.model))
            return {"pairs": len(pairs), "steps": report["steps"], "train_loss": report["train_loss"],
                    "first_losses": report["first_losses"], "last_losses": report["last_losses"],
                    "reward_accuracy_last": report["reward_accuracy_last"],
                    "train_seconds": report["seconds"], "adapter": report["adapter"], "trained": True}

        run.step(n, "actor", actor_step)
        judged = run.step(n, "judge", judge_step)
        run.step(n, "meta", meta_step)
        made = run.step(n, "pairs", pairs_step)
        trained = run.step(n, "train", train_step)
        adapter = trained["adapter"]
        previous = rows[-1]

        def eval_step(d: Path, seed: int = seed, adapter: str | None = adapter, trained: dict[str, Any] = trained,
                      previous: dict[str, Any] = previous) -> dict[str, Any]:
            if not trained.get("trained"):
                return {"adapter": adapter, "dev": previous["dev"], "meta_agreement": previous["meta_agreement"],
                        "note": "not trained: figures carried over"}
            return evaluate(adapter, seed + 7, d)

        ev = run.step(n, "eval", eval_step)
        row = {"iteration": n, "adapter": adapter, "actor": run.done(n, "actor"), "judge": judged,
               "meta": run.done(n, "meta"), "pairs": made, "train": trained, "dev": ev["dev"],
               "meta_agreement": ev["meta_agreement"], "change": compare_iterations(previous["dev"], ev["dev"])}
        write_json(run.iteration(n) / "report.json", row)
        rows.append(row)
    table = write_run_report(run.path, "meta-reward", rows, cfg.dev_sets, run.settings)
    return {"rows": rows, "table": table, "out": str(run.path)}


__all__ = ["MetaRewardConfig", "PairChoice", "actor_pair", "build_pairs", "judge_pair", "meta_agreement",
           "meta_candidates", "meta_judge", "run_meta_reward", "score_responses"]
