"""Verdict heads on frozen features: one multitask judge over every labelled set (FLAMe-style).

What it fits. Each *route* (a task type, its verdict labels and one exact criteria text;
:mod:`flame_reward.models.heads`) gets a linear head on the hidden state the LM head reads
at the verdict position; the head's output is added to the raw verdict log-probabilities.
Routes that share a label space (every pairwise route; every 1-5 rating route) share a
component: head_g = shared + own_g, both L2-penalised (regularised multitask learning), so
a set with few examples borrows what the others learnt. The loss is the cross-entropy
against the human distribution (:mod:`flame_reward.train.features`), each set weighted
examples-proportionally with FLAMe's cap (2^16 per task) after each set was sampled down
to its compute cap.

Why this method. Gradient LoRA on this CPU sat at ln 2; closed-form heads on frozen
features are what worked (docs/training.md). A head on the final hidden state is cheap to
fit (seconds, once features are cached), reads one forward pass that the raw verdict needs
anyway, and is applied in code only on its own route, so every other verdict stays the
raw model's bit for bit.

Honest selection. The L2 strengths and which routes ship are chosen on a validation
carve-out of the *train* splits (by record key, so both orders of a pair and every
dimension of a summary stay on one side). The dev splits are read only when asked
(``dev_sets``), once, after everything is chosen, and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flame_reward.data.sets import (
    GENERAL_CRITERIA,
    HH_HARMLESS_CRITERIA,
    HH_HELPFUL_CRITERIA,
    QAGS_CRITERIA,
    STORY_CRITERIA,
    SUMMARY_CRITERIA,
)
from flame_reward.errors import InvalidInput
from flame_reward.eval.metrics import kendall_tau_b, proportion_interval, tau_interval
from flame_reward.models.heads import Head, HeadSet, Route
from flame_reward.train.features import SetFeatures, set_features
from flame_reward.train.mixture import DEFAULT_CAP, mixing_rates

#: Route names of the shipped criteria texts (any other text is named from its start).
ROUTE_NAMES = {
    HH_HELPFUL_CRITERIA: "helpfulness",
    HH_HARMLESS_CRITERIA: "harmlessness",
    GENERAL_CRITERIA: "instruction-following",
    STORY_CRITERIA: "story-quality",
    QAGS_CRITERIA: "factual-support",
    **{text: f"summary-{dim}" for dim, text in SUMMARY_CRITERIA.items()},
}

#: The shipped mixture: every labelled set of the shared data, with its compute cap
#: (records sampled per set; ``None`` = all). Sized so the rebuild runs in under an hour
#: on 2 CPU cores (docs/training.md has the measured time).
TRAIN_SETS: dict[str, int | None] = {
    "hh-helpful": 500, "hh-harmless": 500, "hh-helpful-online": 150, "hh-helpful-rejection": 150,
    "pandalm": 250, "auto-j": 150, "llmbar": None,
    "summeval": 300, "dialsummeval": 300, "openmeva": 300, "qags": 300,
}
#: Dev evaluation: every dev record, except the largest sets, sampled to these caps.
DEV_SETS: dict[str, int | None] = {
    "hh-helpful": None, "hh-harmless": None, "hh-helpful-online": 100, "hh-helpful-rejection": 100,
    "pandalm": None, "auto-j": None, "llmbar": None,
    "summeval": 300, "dialsummeval": 300, "openmeva": None, "qags": None,
}
#: (shared L2, per-route L2) pairs tried; ``None`` as shared L2 = no shared component.
L2_GRID: tuple[tuple[float | None, float], ...] = tuple(
    (s, r) for s in (None, 1e-2, 1e-1) for r in (1e-3, 1e-2, 1e-1, 1.0)
)


@dataclass
class HeadsConfig:
    out: str
    train_sets: dict[str, int | None] = field(default_factory=lambda: dict(TRAIN_SETS))
    dev_sets: dict[str, int | None] | None = None
    l2_grid: tuple[tuple[float | None, float], ...] = L2_GRID
    mix_cap: int = DEFAULT_CAP
    validation_fraction: float = 0.25
    seed: int = 0
    max_length: int = 1024
    threads: int | None = None
    features_dir: str | None = None
    name: str = "smollm2-135m-flame-rm"
    model_id: str = "smollm2-135m-instruct"


def route_name(criteria: str, task: str) -> str:
    if criteria in ROUTE_NAMES:
        return ROUTE_NAMES[criteria]
    words = "".join(c if c.isalnum() else "-" for c in criteria.lower()[:32]).strip("-")
    return f"{task}-{words}"


def in_validation(key: str, fraction: float) -> bool:
    """The validation carve-out of the train split: fixed per record key."""
    point = int.from_bytes(hashlib.sha256(f"validation:{key}".encode()).digest()[:8], "big") / float(2**64)
    return point < fraction


# --- the fit ---------------------------------------------------------------------------


@dataclass
class _Rows:
    """Every training row (one per record and presentation order), flattened."""

    z: Any  # standardised features [N, d]
    offset: Any  # raw label log-probabilities [N, k] (k = the route's label count; padded with -inf)
    target: Any  # [N, k]
    weight: Any  # [N]
    route: Any  # [N] route index


@dataclass
class Fitted:
    """A fitted multitask head: standardisation, shared and per-route components."""

    routes: list[Route]
    mu: Any
    sd: Any
    shared: dict[tuple[str, ...], tuple[Any, Any]]  # label space -> (W [k, d], b [k]) on standardised z
    own: list[tuple[Any, Any]]  # per route (V [k, d], c [k])

    def delta(self, g: int, hidden: Any) -> Any:
        """The head's addition for route ``g`` at hidden states ``[n, d]`` -> ``[n, k]``."""
        z = (hidden - self.mu) / self.sd
        w, b = self.weights(g)
        return z @ w.T + b

    def weights(self, g: int) -> tuple[Any, Any]:
        v, c = self.own[g]
        space = self.shared.get(self.routes[g].verdicts)
        if space is None:
            return v, c
        return space[0] + v, space[1] + c

    def head_set(self, name: str, keep: Sequence[int], base_model: str) -> HeadSet:
        """The routes in ``keep`` as an inference head set (standardisation folded in)."""
        heads = []
        for g in keep:
            w, b = self.weights(g)
            raw_w = w / self.sd
            heads.append(Head(self.routes[g], raw_w.detach().clone(), (b - raw_w @ self.mu).detach().clone()))
        return HeadSet(name, heads, base_model=base_model)


def _route_of(feats: SetFeatures, i: int) -> tuple[str, str, tuple[str, ...]]:
    return (feats.task, feats.criteria[i], feats.labels)


def routes_of(sets: Sequence[SetFeatures]) -> list[Route]:
    keys = sorted({_route_of(f, i) for f in sets for i in range(len(f))}, key=lambda k: (k[0], route_name(k[1], k[0])))
    for task, criteria, _ in keys:
        if not criteria:
            raise InvalidInput("train_sets", f"a {task} set has records without criteria: a head needs its own "
                                             "criteria text (a head on the default criteria would take over every "
                                             "default judgment)")
    return [Route(route_name(c, t), t, c, labels) for t, c, labels in keys]


def _rows(sets: Sequence[SetFeatures], rows: Mapping[str, Sequence[int]], routes: Sequence[Route],
          mix_cap: int, mu: Any = None, sd: Any = None) -> tuple[_Rows, Any, Any]:
    import torch

    index = {(r.task, r.criteria, r.verdicts): g for g, r in enumerate(routes)}
    sizes = {f.name: len(rows[f.name]) for f in sets if rows[f.name]}
    rates = mixing_rates(sizes, mix_cap)
    total = sum(sizes.values())
    xs, offs, tgs, ws, rs = [], [], [], [], []
    kmax = max(len(r.verdicts) for r in routes)
    for f in sets:
        ids = list(rows[f.name])
        if not ids:
            continue
        # Examples-proportional with a cap: each set's share of the loss is its mixing rate.
        per_record = rates[f.name] * total / len(ids)
        orders = f.hidden.shape[1]
        for i in ids:
            g = index[_route_of(f, i)]
            for o in range(orders):
                xs.append(f.hidden[i, o])
                off = torch.full((kmax,), float("-inf"))
                off[: len(f.labels)] = f.logp[i, o]
                tg = torch.zeros(kmax)
                tg[: len(f.labels)] = f.target[i, o]
                offs.append(off)
                tgs.append(tg)
                ws.append(per_record / orders)
                rs.append(g)
    x = torch.stack(xs)
    if mu is None:
        mu, sd = x.mean(0), x.std(0) + 1e-4
    return _Rows((x - mu) / sd, torch.stack(offs), torch.stack(tgs), torch.tensor(ws), torch.tensor(rs)), mu, sd


def fit(rows: _Rows, routes: Sequence[Route], mu: Any, sd: Any, l2_shared: float | None, l2_route: float,
        max_iter: int = 200) -> Fitted:
    """Weighted cross-entropy of ``softmax(offset + head(z))`` against the human targets,
    plus L2 on the shared and per-route weights (LBFGS, full batch)."""
    import torch

    d = rows.z.shape[1]
    spaces = sorted({r.verdicts for r in routes}) if l2_shared is not None else []
    shared = {s: (torch.zeros(len(s), d, requires_grad=True), torch.zeros(len(s), requires_grad=True)) for s in spaces}
    own = [(torch.zeros(len(r.verdicts), d, requires_grad=True), torch.zeros(len(r.verdicts), requires_grad=True))
           for r in routes]
    params = [p for pair in (*shared.values(), *own) for p in pair]
    total_w = float(rows.weight.sum())
    # Each route's rows sliced once: the closure runs hundreds of times.
    blocks = []
    for g in range(len(routes)):
        idx = torch.nonzero(rows.route == g).flatten()
        if len(idx):
            k = len(routes[g].verdicts)
            blocks.append((g, rows.z[idx].contiguous(), rows.offset[idx, :k].contiguous(),
                           rows.target[idx, :k].contiguous(), rows.weight[idx] / total_w))
    opt = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-6)

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.zeros(())
        for g, z, offset, target, weight in blocks:
            w, b = own[g]
            if routes[g].verdicts in shared:
                w, b = w + shared[routes[g].verdicts][0], b + shared[routes[g].verdicts][1]
            ce = -(target * torch.log_softmax(offset + z @ w.T + b, -1)).sum(-1)
            loss = loss + (ce * weight).sum()
        for w, _ in own:
            loss = loss + l2_route * (w * w).sum()
        for w, _ in shared.values():
            loss = loss + float(l2_shared or 0.0) * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    detach = lambda pair: (pair[0].detach(), pair[1].detach())  # noqa: E731
    return Fitted(list(routes), mu, sd, {s: detach(p) for s, p in shared.items()}, [detach(p) for p in own])


# --- evaluation ---------------------------------------------------------------------------


def set_metrics(f: SetFeatures, rows: Sequence[int], fitted: Fitted | None = None,
                keep: Sequence[int] | None = None) -> dict[str, Any]:
    """A set's figure on ``rows``: raw (``fitted`` None) or with the heads in ``keep``.

    Pairwise: accuracy of the debiased verdict on non-tie pairs; pointwise: Kendall tau-b of
    the expected rating with the human mean, per subset (dimension) and their mean;
    classification: accuracy of the most probable label. Each with its 95% half-interval.
    """
    import torch

    ids = list(rows)
    if not ids:
        return {"n": 0}
    logits = f.logp[ids].clone()
    head_used = 0
    if fitted is not None:
        index = {(r.task, r.criteria, r.verdicts): g for g, r in enumerate(fitted.routes)}
        for pos, i in enumerate(ids):
            g = index.get(_route_of(f, i))
            if g is not None and (keep is None or g in keep):
                logits[pos] += fitted.delta(g, f.hidden[i])
                head_used += 1
    p = torch.softmax(logits, -1)
    # Cross-entropy against the human distributions (a proper score: what selection reads).
    log_loss = float(-(f.target[ids] * torch.log_softmax(logits, -1).clamp(min=-1e4)).sum(-1).mean())
    out: dict[str, Any] = {"n": len(ids), "head": head_used, "log_loss": log_loss}
    if f.kind == "pairwise":
        pa = 0.5 * (p[:, 0, 0] + p[:, 1, 1])
        value = f.value[ids]
        decided = value != 0.5
        pts = torch.where(pa == 0.5, torch.full_like(pa, 0.5), ((pa > 0.5) == (value > 0.5)).float())[decided]
        acc = float(pts.mean()) if len(pts) else float("nan")
        out.update(metric="accuracy", value=acc, pairs=int(decided.sum()), interval=proportion_interval(acc, len(pts)))
    elif f.kind == "pointwise":
        scale = torch.tensor([float(lab) for lab in f.labels])
        expected = (p[:, 0] * scale).sum(-1).tolist()
        human = f.value[ids].tolist()
        by: dict[str, list[int]] = {}
        for pos, i in enumerate(ids):
            by.setdefault(f.subsets[i], []).append(pos)
        taus = {s: kendall_tau_b([expected[j] for j in js], [human[j] for j in js]) for s, js in sorted(by.items())}
        mean_tau = sum(taus.values()) / len(taus)
        n_min = min(len(js) for js in by.values())
        out.update(metric="kendall_tau", value=mean_tau, per_subset=taus,
                   subset_n={s: len(js) for s, js in by.items()}, interval=tau_interval(n_min))
    else:
        pred = p[:, 0].argmax(-1)
        gold = f.target[ids, 0].argmax(-1)
        acc = float((pred == gold).float().mean())
        out.update(metric="accuracy", value=acc, interval=proportion_interval(acc, len(ids)),
                   majority=float(max((gold == 0).float().mean(), (gold == 1).float().mean())))
    return out


def _split_rows(sets: Sequence[SetFeatures], fraction: float) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    fit_rows, val_rows = {}, {}
    for f in sets:
        val = [i for i in range(len(f)) if in_validation(f.keys[i], fraction)]
        chosen = set(val)
        fit_rows[f.name] = [i for i in range(len(f)) if i not in chosen]
        val_rows[f.name] = val
    return fit_rows, val_rows


def select(sets: Sequence[SetFeatures], routes: Sequence[Route], config: HeadsConfig,
           progress: bool = True) -> dict[str, Any]:
    """Choose the L2 strengths and the routes to ship on the validation carve-out of train."""
    fit_rows, val_rows = _split_rows(sets, config.validation_fraction)
    rows, mu, sd = _rows(sets, fit_rows, routes, config.mix_cap)
    raw = {f.name: set_metrics(f, val_rows[f.name]) for f in sets}
    trials = []
    for n, (l2s, l2r) in enumerate(config.l2_grid):
        fitted = fit(rows, routes, mu, sd, l2s, l2r)
        got = {f.name: set_metrics(f, val_rows[f.name], fitted) for f in sets}
        gains = {s: got[s]["value"] - raw[s]["value"] for s in got}
        loss_gains = {s: raw[s]["log_loss"] - got[s]["log_loss"] for s in got}
        trials.append({"l2_shared": l2s, "l2_route": l2r, "mean_gain": sum(gains.values()) / len(gains),
                       "mean_loss_gain": sum(loss_gains.values()) / len(got), "gains": gains,
                       "loss_gains": loss_gains, "fitted": fitted})
        if progress:
            print(f"heads: select {n + 1}/{len(config.l2_grid)} l2_shared={l2s} l2_route={l2r} "
                  f"mean validation metric gain {trials[-1]['mean_gain']:+.4f}, log-loss gain "
                  f"{trials[-1]['mean_loss_gain']:+.4f}", file=sys.stderr)
    # The reported figure (accuracy, tau) decides, every set counting alike; the log-loss
    # (which the rating sets' calibration dominates) only breaks ties.
    best = max(trials, key=lambda t: (round(t["mean_gain"], 6), t["mean_loss_gain"]))
    # A route ships only if its validation records, pooled, gain: the metric not lower and
    # the log-loss lower (a set's weight is its number of validation records).
    keep, route_gain, route_loss_gain = [], {}, {}
    for g, route in enumerate(routes):
        key = (route.task, route.criteria, route.verdicts)
        parts = []  # (records, metric gain, log-loss gain) per set the route serves
        for f in sets:
            mine = [i for i in val_rows[f.name] if _route_of(f, i) == key]
            if len(mine) > 1:
                before, after = set_metrics(f, mine), set_metrics(f, mine, best["fitted"])
                parts.append((len(mine), after["value"] - before["value"], before["log_loss"] - after["log_loss"]))
        total = sum(n for n, _, _ in parts)
        if not total:
            route_gain[route.name] = route_loss_gain[route.name] = float("nan")
            continue
        route_gain[route.name] = sum(n * gain for n, gain, _ in parts) / total
        route_loss_gain[route.name] = sum(n * loss for n, _, loss in parts) / total
        if route_loss_gain[route.name] > 0 and route_gain[route.name] >= 0:
            keep.append(g)
    return {"l2_shared": best["l2_shared"], "l2_route": best["l2_route"], "keep": keep,
            "route_validation_gain": route_gain, "route_validation_loss_gain": route_loss_gain,
            "validation_raw": raw,
            "trials": [{k: v for k, v in t.items() if k != "fitted"} for t in trials],
            "validation_records": {s: len(v) for s, v in val_rows.items()},
            "fit_records": {s: len(v) for s, v in fit_rows.items()}}


def train_heads(config: HeadsConfig, *, scorer: Any = None, progress: bool = True) -> dict[str, Any]:
    """Features (cached) -> selection on the train carve-out -> refit on all of train ->
    save the head set to ``<out>/heads`` -> (once, if asked) the dev figures. Returns the report."""
    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(config.features_dir) if config.features_dir else out / "features"
    if scorer is None:
        from flame_reward import Autorater

        scorer = Autorater.from_pretrained(adapter=None, threads=config.threads, max_length=config.max_length).scorer

    def features(split: str, caps: Mapping[str, int | None]) -> list[SetFeatures]:
        return [set_features(scorer, config.model_id, name, split, cap=cap, seed=config.seed, cache_dir=cache,
                             progress=progress) for name, cap in caps.items()]

    train = features("train", config.train_sets)
    feature_seconds = {f.name: f.seconds for f in train}
    routes = routes_of(train)
    t_select = time.time()
    chosen = select(train, routes, config, progress)
    select_seconds = time.time() - t_select
    all_rows = {f.name: list(range(len(f))) for f in train}
    rows, mu, sd = _rows(train, all_rows, routes, config.mix_cap)
    t_fit = time.time()
    fitted = fit(rows, routes, mu, sd, chosen["l2_shared"], chosen["l2_route"])
    fit_seconds = time.time() - t_fit
    heads = fitted.head_set(config.name, chosen["keep"], config.model_id)
    if not heads.heads:
        raise InvalidInput("train_sets", "no route gained on the validation carve-out: nothing to ship")
    head_dir = heads.save(out / "heads", extra={"dev_splits_read": bool(config.dev_sets)})
    sizes = {f.name: len(f) for f in train}
    report: dict[str, Any] = {
        "method": "verdict heads on frozen features (shared + per-route linear heads, L2, LBFGS)",
        "config": {k: v for k, v in asdict(config).items() if k != "l2_grid"},
        "l2_grid": [list(p) for p in config.l2_grid],
        "train_records": sizes,
        "mixing_rates": mixing_rates(sizes, config.mix_cap),
        "routes": [r.to_dict() for r in routes],
        "shipped_routes": [routes[g].name for g in chosen["keep"]],
        "selection": chosen,
        "feature_seconds_train": feature_seconds,
        "select_seconds": select_seconds,
        "fit_seconds": fit_seconds,
        # What a rebuild from scratch costs: extraction (from the cache's own record) + selection + fit.
        "rebuild_seconds": sum(feature_seconds.values()) + select_seconds + fit_seconds,
        "heads": str(head_dir),
    }
    if config.dev_sets:
        dev = features("dev", config.dev_sets)
        report["dev_read_once"] = True
        report["dev"] = {f.name: {"raw": set_metrics(f, range(len(f))),
                                  "judge": set_metrics(f, range(len(f)), fitted, chosen["keep"])} for f in dev}
        report["feature_seconds_dev"] = {f.name: f.seconds for f in dev}
    report["seconds"] = time.time() - started
    (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


__all__ = ["DEV_SETS", "TRAIN_SETS", "HeadsConfig", "fit", "routes_of", "select", "set_metrics", "train_heads"]
