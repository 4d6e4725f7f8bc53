"""Probe-built LoRA: a verdict conditioned on each set's criteria, fitted in closed form.

Why this exists. Gradient LoRA (full SFT, or the cached top-layer trainer) learnt the
answer format and then sat at a coin flip's loss on the verdict. Yet a linear probe on the
last layer's MLP input at the verdict position *does* find a preference in the frozen
model, per set; pooled over sets that reward opposite behaviour (compliance vs refusal)
it falls to chance, because a single linear readout cannot switch on the criteria
(docs/training.md has the measured accuracies). The preference signal is a small
difference between the two presentation orders, which an L2 logistic regression on
standardised features finds and small-learning-rate Adam on LoRA weights did not.

What it builds, for each criteria group ``g`` (the distinct ``criteria`` of the training
examples; none = the task default):

- a preference probe ``w_g``: L2 logistic regression on ``x`` (input of the last layer's
  MLP at the verdict position) predicting verdict ``A``, on group ``g``'s examples in both
  orders (its bias, like the detectors', rides on the near-constant coordinate below);
- a criteria detector ``c_g``: one-vs-rest logistic regression on ``x``; LoRA has no bias,
  so the detector's bias rides on a coordinate of ``x`` that is nearly constant (a
  "massive activation"; a model without one is refused); scaled so that ``c_g·x >= 1`` on
  its group and ``<= -1`` elsewhere (the report gives the share of examples that meet it);
- one neuron ``j_g`` of the last MLP, the least used on the data, rewritten by rank-one
  LoRA updates: gate row ``alpha·c_g``, up row ``w_g``, down column ``k·v`` with ``v`` the
  residual direction that moves ``logit(A) - logit(B)`` most through the final norm.
  ``silu(alpha·c_g·x)`` is ~``alpha·c_g·x`` on its own group and ~0 elsewhere, so the
  neuron adds ~``alpha·k·(c_g·x)(w_g·x)`` to the verdict only under its own criteria.

Optional *background* examples (other sets' prompts, under other criteria) are negatives of
every detector, so the neurons stay off where no probe was fitted (``--background-sets``).

``k`` is the one number fitted through the whole verdict pipeline: the value on a fixed
grid with the lowest training cross-entropy. The result is an ordinary PEFT LoRA (rank =
number of groups, ``lora_alpha = r`` so the scale is 1) on the last layer's
``gate_proj``/``up_proj``/``down_proj``; merged, it is exact. The features come from the
cached trainer's activation cache (``flame_reward.train.cached``), so a run reuses a cache
made by ``--cached-top-layers``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.train.cached import (
    CachedConfig,
    CachedExample,
    _cached,
    _layers,
    cache_run,
    pair_metrics,
    save_adapter,
    top_hidden,
)
from flame_reward.train.examples import LabelledExample

#: Output scales tried for the rewritten neurons (chosen by training cross-entropy).
SCALE_GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
DEFAULT_GROUP = "(task default)"


@dataclass
class ProbeConfig(CachedConfig):
    """A probe-built LoRA run; the caching settings are the cached trainer's."""

    #: L2 penalty of the preference probes (on standardised features).
    l2: float = 0.1
    #: Gate gain: ``silu(alpha * c.x)`` with ``|c.x| >= 1`` is ~linear on, ~0 off.
    alpha: float = 8.0
    #: L2 penalty of the criteria detectors (on standardised features).
    detector_l2: float = 1e-2
    scales: tuple[float, ...] = SCALE_GRID


def _group(item: LabelledExample) -> str:
    return item.example.get("criteria") or DEFAULT_GROUP


def verdict_states(model: Any, first_layer: int, examples: Sequence[CachedExample]) -> tuple[Any, Any]:
    """For each cached example: the last layer's MLP input ``x`` at the verdict position,
    and the residual stream there before that MLP's output is added (``x``, ``rp``)."""
    import torch

    body = _layers(model)
    last = body.layers[-1]
    cap: dict[str, Any] = {}
    handle = last.mlp.register_forward_hook(lambda m, a, o: cap.update(x=a[0], out=o))
    xs, rps = [], []
    try:
        with torch.no_grad():
            for ex in examples:
                h = top_hidden(model, first_layer, ex.hidden)
                p = int(ex.positions[0])
                xs.append(cap["x"][0, p].float().cpu())
                rps.append((h[0, p] - cap["out"][0, p]).float().cpu())
    finally:
        handle.remove()
    return torch.stack(xs), torch.stack(rps)


def _logistic(features: Any, targets: Any, l2: float) -> tuple[Any, float]:
    """L2 logistic regression on standardised features; returns raw-scale weights and bias."""
    import torch

    mu, sd = features.mean(0), features.std(0) + 1e-4
    z = (features - mu) / sd
    w = torch.zeros(features.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, targets) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    raw = (w / sd).detach()
    return raw, float(b.item() - (raw * mu).sum().item())


class _Head:
    """The last layer's MLP with the rewritten neurons, at the verdict position (pure torch)."""

    def __init__(self, model: Any, label_ids: Mapping[str, int]) -> None:
        body = _layers(model)
        mlp = body.layers[-1].mlp
        self.wg, self.wu, self.wd = (m.weight.detach().float().cpu() for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        self.gw, self.eps = body.norm.weight.detach().float().cpu(), body.norm.variance_epsilon
        head = (model.get_base_model() if hasattr(model, "get_base_model") else model).lm_head.weight.detach().float().cpu()
        self.e_ab = head[label_ids["A"]] - head[label_ids["B"]]
        v = self.e_ab * self.gw  # d(logit A - logit B)/d(residual), up to the norm's scale
        self.v = v / v.norm()

    def logit_diff(self, x: Any, rp: Any, neurons: Sequence[int], gates: Any, ups: Any, scale: float) -> Any:
        import torch

        m = torch.nn.functional.silu(x @ self.wg.T) * (x @ self.wu.T)
        wd = self.wd.clone()
        for i, j in enumerate(neurons):
            m[:, j] = torch.nn.functional.silu(x @ gates[i]) * (x @ ups[i])
            wd[:, j] = scale * self.v
        r = rp + m @ wd.T
        hn = r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + self.eps) * self.gw
        return hn @ self.e_ab


def fit_probe_lora(x: Any, rp: Any, labels: Sequence[str], groups: Sequence[str], head: _Head,
                   config: ProbeConfig, background: Any = None) -> dict[str, Any]:
    """Fit probes, detectors and the output scale; return the rewritten neurons' weights and a report.

    ``background``: verdict states of prompts under *other* criteria (e.g. other sets with
    the task default), used only as negatives of every detector, so the rewritten neurons
    stay off for judgments the probes were not fitted on.
    """
    import torch

    y = torch.tensor([1.0 if lab == "A" else 0.0 for lab in labels])
    names = sorted(set(groups))
    idx = {g: [i for i, gg in enumerate(groups) if gg == g] for g in names}
    for g, ids in idx.items():
        if len({labels[i] for i in ids}) < 2:
            raise InvalidInput("training data", f"criteria group {g!r} needs examples of both verdicts A and B")
    mean, std = x.mean(0), x.std(0)
    const = int((mean.abs() / (std + 1e-6)).argmax())
    if float(mean[const].abs() / (std[const] + 1e-6)) < 20:
        raise InvalidInput("model", "the last MLP input has no near-constant coordinate to carry the detectors' bias")
    ups = []
    for g in names:
        w, bias = _logistic(x[idx[g]], y[idx[g]], config.l2)
        w = w.clone()
        w[const] += bias / float(mean[const])  # the probe's bias, carried like the detectors'
        ups.append(w)
    gates, detection = [], {}
    n_bg = 0 if background is None else len(background)
    xd = x if not n_bg else torch.cat([x, background])
    for g in names:
        member = torch.tensor([1.0 if gg == g else 0.0 for gg in groups] + [0.0] * n_bg)
        if len(names) == 1 and not n_bg:
            c = torch.zeros(x.shape[1])
            c[const] = 1.0 / float(mean[const])  # always on: c.x ~ 1
        else:
            c, bias = _logistic(xd, member, config.detector_l2)
            c = c.clone()
            c[const] += bias / float(mean[const])
            z = xd @ c
            on, off = z[member == 1], z[member == 0]
            # scale so that the 1st percentile of the group is >= 1 and the 99th of the rest <= -1
            lo, hi = float(on.quantile(0.01)), float(off.quantile(0.99))
            if lo <= 0 or hi >= 0:
                raise InvalidInput("criteria", f"the criteria of group {g!r} cannot be told apart from the others' "
                                               "at the verdict position")
            c = c / min(lo, -hi)
        z = xd @ c
        member_b = member == 1
        detection[g] = float(((z >= 1) == member_b).float().mean()) if len(names) > 1 or n_bg else 1.0
        gates.append(config.alpha * c)
    m0 = torch.nn.functional.silu(x @ head.wg.T) * (x @ head.wu.T)
    usage = m0.abs().mean(0) * head.wd.abs().sum(0)
    neurons = [int(j) for j in usage.argsort()[: len(names)]]
    curve = []
    with torch.no_grad():
        for k in config.scales:
            ld = head.logit_diff(x, rp, neurons, gates, ups, k)
            curve.append((float(torch.nn.functional.binary_cross_entropy_with_logits(ld, y)), k))
    best_loss, scale = min(curve)
    off = {}
    if n_bg:
        zb = torch.stack([background @ (gate / config.alpha) for gate in gates], 1)
        off = {"background_examples": n_bg, "background_all_gates_off": float((zb <= -1).all(1).float().mean()),
               "background_max_gate": float(zb.max())}
    return {"groups": names, "neurons": neurons, "gates": gates, "ups": ups, "scale": scale, **off,
            "const_coordinate": const, "detector_agreement": detection,
            "scale_curve": [{"scale": k, "train_bce": loss} for loss, k in curve], "train_bce": best_loss}


def lora_state(head: _Head, fit: Mapping[str, Any], layer: int) -> dict[str, Any]:
    """PEFT state dict (rank = groups, scale 1) that rewrites the chosen neurons of ``layer``."""
    import torch

    r = len(fit["neurons"])
    out: dict[str, Any] = {}
    prefix = f"base_model.model.model.layers.{layer}.mlp"
    for name, full, rows in (("gate_proj", head.wg, fit["gates"]), ("up_proj", head.wu, fit["ups"])):
        a = torch.stack([rows[i] - full[j] for i, j in enumerate(fit["neurons"])])  # (r, d)
        b = torch.zeros(full.shape[0], r)
        for i, j in enumerate(fit["neurons"]):
            b[j, i] = 1.0
        out[f"{prefix}.{name}.lora_A.weight"], out[f"{prefix}.{name}.lora_B.weight"] = a, b
    a = torch.zeros(r, head.wd.shape[1])
    b = torch.stack([fit["scale"] * head.v - head.wd[:, j] for j in fit["neurons"]], dim=1)  # (d, r)
    for i, j in enumerate(fit["neurons"]):
        a[i, j] = 1.0
    out[f"{prefix}.down_proj.lora_A.weight"], out[f"{prefix}.down_proj.lora_B.weight"] = a, b
    return out


def train_probe(config: ProbeConfig, train_items: Sequence[LabelledExample],
                dev_sets: dict[str, Sequence[LabelledExample]] | None = None, *, loaded: Any = None,
                background: Sequence[LabelledExample] = ()) -> dict[str, Any]:
    """Cache (or reuse the cache of) the training examples, build the probe LoRA, save it to
    ``<out>/adapter`` and return the run report (select and dev accuracy before/after,
    measured through the PEFT model itself)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    # Refused before any caching: background prompts must be under criteria no group is fitted on.
    clash = {_group(it) for it in background} & {_group(it) for it in train_items}
    if clash:
        raise InvalidInput("background", f"background examples share the criteria of training groups: {sorted(clash)}")
    run = cache_run(config, train_items, dev_sets, loaded)
    tokenizer, base, n_layers, first, started = run.tokenizer, run.base, run.n_layers, run.first, run.started
    fit_items, fit_ex, skipped, select, dev, out = run.fit_items, run.fit, run.skipped, run.select, run.dev, run.out
    bg_ex = _cached(base, tokenizer, list(background), first, config, out / "cache", "background")[0] if background else []
    # _cached keeps the order of the items it did not skip; map each cached example to its group.
    group_of = {(it.key, it.label): _group(it) for it in fit_items}
    fit_ex = [e for e in fit_ex if e.label in ("A", "B")]  # human ties carry no preference to probe
    groups = [group_of[(e.key, e.label)] for e in fit_ex]
    label_ids = {lab: tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")}
    print(f"probe: verdict states of {len(fit_ex)} training examples", file=sys.stderr)
    x, rp = verdict_states(base, first, fit_ex)
    head = _Head(base, label_ids)
    x_bg = verdict_states(base, first, bg_ex)[0] if bg_ex else None
    fit = fit_probe_lora(x, rp, [e.label for e in fit_ex], groups, head, config, background=x_bg)

    def measure(model: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"select": pair_metrics(model, first, select, label_ids)}
        for name, exs in dev.items():
            row[f"dev:{name}"] = pair_metrics(model, first, exs, label_ids)
        return row

    before = measure(base)
    r = len(fit["neurons"])
    lcfg = LoraConfig(r=r, lora_alpha=r, lora_dropout=0.0, target_modules=["gate_proj", "up_proj", "down_proj"],
                      layers_to_transform=[n_layers - 1], task_type="CAUSAL_LM", bias="none")
    model = get_peft_model(base, lcfg)
    result = set_peft_model_state_dict(model, lora_state(head, fit, n_layers - 1))
    if getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"probe LoRA keys not in the model: {result.unexpected_keys[:3]}")
    model.eval()
    after = measure(model)
    adapter_dir = save_adapter(model, out / "adapter")
    report = {
        "method": "probe-built LoRA (last-layer MLP neurons gated by criteria)",
        "config": asdict(config),
        "examples": len(train_items),
        "fit_examples": len(fit_ex),
        "select_examples": len(select),
        "skipped": skipped,
        "groups": {g: groups.count(g) for g in fit["groups"]},
        "first_adapted_layer": first,
        "neurons": fit["neurons"],
        "scale": fit["scale"],
        "scale_curve": fit["scale_curve"],
        "detector_agreement": fit["detector_agreement"],
        "background": {k: fit[k] for k in ("background_examples", "background_all_gates_off", "background_max_gate")
                       if k in fit},
        "const_coordinate": fit["const_coordinate"],
        "steps": 0,
        "seconds": time.time() - started,
        "history": [{"epoch": 0, "train_loss": None, **before}, {"epoch": 1, "train_loss": fit["train_bce"], **after}],
        "dev_before": before,
        "dev_after": after,
        "adapter": str(adapter_dir),
    }
    (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


__all__ = ["ProbeConfig", "fit_probe_lora", "lora_state", "train_probe", "verdict_states"]
