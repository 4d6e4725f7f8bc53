"""Top-layer LoRA trained on cached activations: many epochs on a CPU.

When LoRA adapts only the top ``k`` decoder layers, every layer below them is frozen, so
the input to the first adapted layer is a fixed function of the example. This trainer
computes that input once per example (one forward pass over the data, stopped at that
layer), stores it, and then trains the top ``k`` layers on it: an epoch costs about
``k / L`` of a full forward and backward, which is what makes several epochs affordable on
a CPU (docs/training.md has the measured costs).

The adapter it writes is an ordinary PEFT LoRA (``layers_to_transform`` = the top ``k``),
loaded by the normal path (``--adapter DIR``) and scored by the normal core: nothing else
knows how it was trained. ``tests/test_train_cached.py`` checks that the cached top-layer
forward equals the full model's logits, and that the saved adapter reproduces them
through the standard loading path.

The loss is the recipe's: cross-entropy on the EVALUATION target only (verdict and
end-of-turn token), prompts encoded exactly as the scorer encodes them. Model selection
uses a slice of the *training* pairs held out by key (``select_fraction``); the dev
splits are only measured, never used to pick an epoch.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.train.examples import LabelledExample
from flame_reward.train.lora import LoraSettings
from flame_reward.train.sft import prepare_run
from flame_reward.train.targets import IGNORE, tokenize_example


@dataclass
class CachedConfig(LoraSettings):
    """Everything a cached top-layer run depends on (written into its report and model card)."""

    out: str
    model: str | None = None
    #: Layers adapted, from the top; every layer below them is computed once and cached.
    top_layers: int = field(default=2, kw_only=True)  # type: ignore[assignment]
    max_length: int = 384
    epochs: int = 4
    #: Examples per optimiser step (both orders of a pair are kept in the same step).
    batch_size: int = 16
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    #: Share of training pairs (by key) held out to choose the epoch whose adapter is kept.
    select_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None
    device: str | None = None
    #: Cached examples per shard file (an interrupted caching pass resumes at a shard).
    shard_size: int = 256
    #: Storage dtype of the cached activations (float16 halves the memory; float32 makes
    #: the cached forward bit-for-bit the full model's).
    cache_dtype: str = "float16"
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class CachedExample:
    """One example's input to the first adapted layer, and its loss targets."""

    hidden: Any  # (seq, d) float16 tensor
    positions: Any  # (t,) positions whose next token is a target
    targets: Any  # (t,) target token ids
    key: str
    label: str


def _split_select(items: Sequence[LabelledExample], fraction: float, seed: int) -> tuple[list[LabelledExample], list[LabelledExample]]:
    """Train/select split by pair key, so both orders of a pair land on the same side."""
    keys = sorted({it.key for it in items})
    rng = random.Random(seed)
    rng.shuffle(keys)
    held = set(keys[: round(len(keys) * fraction)]) if fraction > 0 else set()
    return [it for it in items if it.key not in held], [it for it in items if it.key in held]


class _Stop(Exception):
    """Raised by the capture hook: nothing above the first adapted layer needs computing."""


def _layers(model: Any) -> Any:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model


def cache_examples(model: Any, tokenizer: Any, items: Sequence[LabelledExample], first_layer: int, max_length: int,
                   *, dtype: str = "float16", progress: Callable[[int], None] | None = None) -> tuple[list[CachedExample], dict[str, int]]:
    """The input of decoder layer ``first_layer`` for every example (prompt and target,
    minus the final token), with the positions and ids of the target tokens.

    Returns the cached examples and the counts of skipped ones (``too_long`` when even
    with truncated responses the prompt does not fit; other reasons by message).
    """
    import torch

    body = _layers(model)
    captured: dict[str, Any] = {}

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        captured["h"] = args[0] if args else kwargs["hidden_states"]
        raise _Stop

    handle = body.layers[first_layer].register_forward_pre_hook(hook, with_kwargs=True)
    out: list[CachedExample] = []
    skipped: dict[str, int] = {}
    try:
        with torch.no_grad():
            for item in items:
                try:
                    tok = tokenize_example(tokenizer, item, max_length)
                except InvalidInput as exc:
                    reason = "too_long" if exc.field == "max_length" else str(exc)
                    skipped[reason] = skipped.get(reason, 0) + 1
                    if progress:
                        progress(1)
                    continue
                ids = torch.tensor([tok.input_ids[:-1]], device=model.device)
                labels = tok.labels[1:]
                pos = [i for i, lab in enumerate(labels) if lab != IGNORE]
                try:
                    body(input_ids=ids, use_cache=False)
                except _Stop:
                    pass
                out.append(CachedExample(captured["h"][0].to(getattr(torch, dtype)).cpu(), torch.tensor(pos),
                                         torch.tensor([labels[i] for i in pos]), item.key, item.label))
                if progress:
                    progress(1)
    finally:
        handle.remove()
    return out, skipped


def top_hidden(model: Any, first_layer: int, hidden: Any) -> Any:
    """The residual stream after the last decoder layer, (1, seq, d), computed from the
    cached input of layer ``first_layer`` (an unpadded sequence, causal mask)."""
    import torch
    from transformers.masking_utils import create_causal_mask

    body = _layers(model)
    h = hidden.to(torch.float32).unsqueeze(0).to(model.device)
    pos_ids = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
    mask = create_causal_mask(config=body.config, inputs_embeds=h, attention_mask=None, cache=None,
                              position_ids=pos_ids)
    pe = body.rotary_emb(h, position_ids=pos_ids)
    for layer in body.layers[first_layer:]:
        h = layer(h, attention_mask=mask, position_ids=pos_ids, position_embeddings=pe)
    return h


def top_logits(model: Any, first_layer: int, hidden: Any, positions: Any) -> Any:
    """Logits at ``positions`` computed from the cached input of layer ``first_layer``
    through the top layers, the final norm and the LM head (the same modules, hence the
    same function, as the full model's forward on an unpadded sequence)."""
    body = _layers(model)
    h = body.norm(top_hidden(model, first_layer, hidden))[0, positions.to(model.device)]
    head = (model.get_base_model() if hasattr(model, "get_base_model") else model).lm_head
    return head(h)


def _cached(model: Any, tokenizer: Any, items: Sequence[LabelledExample], first_layer: int, config: CachedConfig,
            cache_dir: Path, name: str) -> tuple[list[CachedExample], dict[str, int]]:
    """Cache ``items`` in shards under ``cache_dir``; shards already written are read back,
    so an interrupted caching pass resumes where it stopped."""
    import torch

    from flame_reward.progress import progress_bar

    cache_dir.mkdir(parents=True, exist_ok=True)
    meta_path = cache_dir / f"{name}.json"
    fingerprint = {"n": len(items), "keys": [f"{it.key}:{it.label}" for it in items][:50],
                   "first_layer": first_layer, "max_length": config.max_length, "dtype": config.cache_dtype}
    if meta_path.exists() and json.loads(meta_path.read_text()).get("fingerprint") != fingerprint:
        raise InvalidInput("out", f"{cache_dir} holds a cache of other examples or settings; use a new --out")
    meta_path.write_text(json.dumps({"fingerprint": fingerprint}))
    examples: list[CachedExample] = []
    skipped: dict[str, int] = {}
    bar = progress_bar(total=len(items), desc=f"caching {name}", enabled=True)
    n_shards = math.ceil(len(items) / config.shard_size)
    for s in range(n_shards):
        chunk = items[s * config.shard_size: (s + 1) * config.shard_size]
        path = cache_dir / f"{name}-{s:05d}.pt"
        done = cache_dir / f"{name}-{s:05d}.skipped.json"
        if path.exists() and done.exists():
            rows = torch.load(path)
            examples += [CachedExample(*r) for r in rows]
            for k, v in json.loads(done.read_text()).items():
                skipped[k] = skipped.get(k, 0) + v
            bar.update(len(chunk))
            continue
        part, part_skipped = cache_examples(model, tokenizer, chunk, first_layer, config.max_length,
                                             dtype=config.cache_dtype, progress=bar.update)
        torch.save([(e.hidden, e.positions, e.targets, e.key, e.label) for e in part], path)
        done.write_text(json.dumps(part_skipped))
        examples += part
        for k, v in part_skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    bar.close()
    return examples, skipped


def pair_metrics(model: Any, first_layer: int, examples: Sequence[CachedExample], label_ids: dict[str, int]) -> dict[str, float]:
    """Pairwise accuracy and position consistency on cached two-order pairs, computed from
    the verdict-token distribution at the verdict position (as the scorer reads it)."""
    import torch

    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.results import Verdict

    by_key: dict[str, list[tuple[str, dict[str, float]]]] = {}
    with torch.no_grad():
        for ex in examples:
            logits = top_logits(model, first_layer, ex.hidden, ex.positions[:1])[0]
            lp = torch.log_softmax(logits.float(), -1)
            pa, pb = lp[label_ids["A"]].exp().item(), lp[label_ids["B"]].exp().item()
            by_key.setdefault(ex.key, []).append((ex.label, {"A": pa / (pa + pb), "B": pb / (pa + pb)}))
    verdicts, labels = [], []
    for pres in by_key.values():
        if len(pres) != 2 or {p[0] for p in pres} != {"A", "B"}:
            continue  # ties, or one order skipped as too long
        (lab0, o0), (_, o1) = pres
        p_a = (o0["A"] + o1["B"]) / 2  # P(the first presentation's response A is better)
        verdicts.append(Verdict("pairwise", "A" if p_a >= 0.5 else "B", p_a, {"A": p_a, "B": 1 - p_a}, (o0, o1)))
        labels.append(lab0)
    if not verdicts:
        return {"pairs": 0}
    m = pairwise_metrics(verdicts, labels)
    return {"pairs": len(verdicts), "accuracy": m.accuracy, "position_consistency": m.position_consistency}


@dataclass
class CacheRun:
    """A cached run's model, layer split, output folder and cached examples (train, select, dev)."""

    tokenizer: Any
    base: Any
    n_layers: int
    first: int
    out: Path
    started: float
    fit_items: list[LabelledExample]
    fit: list[CachedExample]
    skipped: dict[str, int]
    select: list[CachedExample]
    dev: dict[str, list[CachedExample]]


def cache_run(config: CachedConfig, train_items: Sequence[LabelledExample],
              dev_sets: dict[str, Sequence[LabelledExample]] | None, loaded: Any) -> CacheRun:
    """Load the model, split off the select pairs and cache (or read back) every split, for
    the trainers that work on cached activations (this module's and ``train.probe``)."""
    if config.top_layers < 1:
        raise InvalidInput("top_layers", "must be at least 1")
    loaded = prepare_run(config, train_items, loaded)
    tokenizer, base = loaded.tokenizer, loaded.model
    n_layers = base.config.num_hidden_layers
    first = max(0, n_layers - config.top_layers)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    fit_items, select_items = _split_select(train_items, config.select_fraction, config.seed)
    cache_dir = out / "cache"
    base.eval()
    fit, skipped = _cached(base, tokenizer, fit_items, first, config, cache_dir, "train")
    select, _ = _cached(base, tokenizer, select_items, first, config, cache_dir, "select")
    dev = {name: _cached(base, tokenizer, list(items), first, config, cache_dir, f"dev-{name}")[0]
           for name, items in (dev_sets or {}).items()}
    if not fit:
        raise InvalidInput("max_length", f"no training example fits in {config.max_length} tokens")
    return CacheRun(tokenizer, base, n_layers, first, out, started, list(fit_items), fit, skipped, select, dev)


def save_adapter(model: Any, path: Path) -> Path:
    """``model.save_pretrained(path)`` for a PEFT model, also over a GGUF-loaded base (whose
    ``quantization_config`` save_pretrained refuses); returns ``path``."""
    if getattr(model.get_base_model().config, "quantization_config", None) is not None:
        del model.get_base_model().config.quantization_config
    model.save_pretrained(str(path))
    return path


def train_cached(
    config: CachedConfig,
    train_items: Sequence[LabelledExample],
    dev_sets: dict[str, Sequence[LabelledExample]] | None = None,
    *,
    loaded: Any = None,
) -> dict[str, Any]:
    """Train a top-``k`` LoRA on cached activations; save the best epoch's adapter (chosen
    on held-out training pairs) to ``<out>/adapter`` and return the run report.

    ``dev_sets`` maps a set name to its dev pairs in *both* orders (``from_pair``); their
    accuracy is logged every epoch and never used for selection. Re-running the same
    command resumes: cached shards are reused and training restarts after the last
    finished epoch.
    """
    import torch
    from peft import get_peft_model, set_peft_model_state_dict
    from peft.utils import get_peft_model_state_dict

    run = cache_run(config, train_items, dev_sets, loaded)
    tokenizer, base, n_layers, first, out, started = run.tokenizer, run.base, run.n_layers, run.first, run.out, run.started
    fit, fit_skipped, select, dev = run.fit, run.skipped, run.select, run.dev
    cache_seconds = time.time() - started

    model = get_peft_model(base, config.peft_config(n_layers))  # adapts layers first..n_layers-1
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    # Pairs stay whole within a step: the two orders' position gradients cancel, the
    # content gradient adds.
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(fit):
        groups.setdefault(ex.key, []).append(i)
    pair_keys = sorted(groups)
    per_step = max(1, config.batch_size)
    steps_per_epoch = math.ceil(len(fit) / per_step)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(0.03 * total_steps))

    def lr_at(step: int) -> float:
        if step < warmup:
            return config.learning_rate * (step + 1) / warmup
        return config.learning_rate * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    label_ids = {lab: tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")}
    state_path = out / "cached_state.pt"
    history: list[dict[str, Any]] = []
    start_epoch, step, best = 0, 0, None
    if state_path.exists():
        state = torch.load(state_path)
        set_peft_model_state_dict(model, state["lora"])
        opt.load_state_dict(state["opt"])
        start_epoch, step, history, best = state["epoch"], state["step"], state["history"], state["best"]
        print(f"resuming after epoch {start_epoch}", file=sys.stderr)

    def evaluate(epoch: int, loss: float | None) -> dict[str, Any]:
        model.eval()
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss, "select": pair_metrics(model, first, select, label_ids)}
        for name, exs in dev.items():
            row[f"dev:{name}"] = pair_metrics(model, first, exs, label_ids)
        model.train()
        return row

    from flame_reward.progress import progress_bar

    if not history:
        history.append(evaluate(0, None))
        best = {"epoch": 0, "select_accuracy": history[0]["select"].get("accuracy", 0.5), "lora": None}
    for epoch in range(start_epoch, config.epochs):
        rng = random.Random(config.seed * 1000 + epoch)
        order = pair_keys[:]
        rng.shuffle(order)
        flat = [i for k in order for i in groups[k]]
        model.train()
        bar = progress_bar(total=len(flat), desc=f"epoch {epoch + 1}/{config.epochs}", enabled=True)
        losses: list[float] = []
        for s in range(0, len(flat), per_step):
            batch = flat[s: s + per_step]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.zero_grad()
            n_targets = sum(len(fit[i].targets) for i in batch)
            total = 0.0
            for i in batch:
                ex = fit[i]
                logits = top_logits(model, first, ex.hidden, ex.positions)
                loss = torch.nn.functional.cross_entropy(logits.float(), ex.targets.to(logits.device), reduction="sum")
                (loss / n_targets).backward()
                total += loss.item()
            opt.step()
            step += 1
            losses.append(total / n_targets)
            bar.update(len(batch))
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
        bar.close()
        row = evaluate(epoch + 1, sum(losses) / len(losses))
        history.append(row)
        print(json.dumps(row), file=sys.stderr)
        sel = row["select"].get("accuracy", 0.0)
        if sel > best["select_accuracy"]:
            best = {"epoch": epoch + 1, "select_accuracy": sel,
                    "lora": {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}}
        torch.save({"lora": get_peft_model_state_dict(model), "opt": opt.state_dict(), "epoch": epoch + 1,
                    "step": step, "history": history, "best": best}, state_path)

    if best and best["lora"] is not None:
        set_peft_model_state_dict(model, best["lora"])
    adapter_dir = save_adapter(model, out / "adapter")
    chosen = next((h for h in history if h["epoch"] == (best or {}).get("epoch", 0)), history[0])
    report = {
        "method": "cached top-layer LoRA",
        "config": asdict(config),
        "examples": len(train_items),
        "fit_examples": len(fit),
        "select_examples": len(select),
        "skipped": fit_skipped,
        "first_adapted_layer": first,
        "steps": step,
        "seconds": time.time() - started,
        "cache_seconds": cache_seconds,
        "history": history,
        "best_epoch": (best or {}).get("epoch", 0),
        "dev_before": history[0],
        "dev_after": chosen,
        "adapter": str(adapter_dir),
    }
    (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


__all__ = ["CacheRun", "CachedConfig", "CachedExample", "cache_examples", "cache_run", "pair_metrics", "save_adapter", "top_hidden", "top_logits", "train_cached"]
