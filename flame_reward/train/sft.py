"""The FLAMe training recipe: LoRA SFT of a judge on TRL's SFTTrainer.

Loss is on the EVALUATION target only (the verdict and the end-of-turn token); prompts
are encoded exactly as the scoring core encodes them. Checkpoints land in
``<out>/checkpoint-*``; re-running the same command resumes from the newest one. The
dev-split pairwise accuracy of the model being trained is measured with the scoring core
itself (both orders) every ``eval_every`` steps and logged.
"""

from __future__ import annotations

import json
import logging
import math

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.train.examples import LabelledExample
from flame_reward.train.lora import LoraSettings
from flame_reward.train.targets import tokenize_example

log = logging.getLogger(__name__)

@dataclass
class TrainConfig(LoraSettings):
    """Everything a training run depends on (written beside the adapter as the model card's source)."""

    out: str
    model: str | None = None
    init_adapter: str | None = None
    max_length: int = 512
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.03
    seed: int = 0
    eval_every: int = 50
    dev_pairs: int = 64
    save_every: int = 50
    log_every: int = 5
    threads: int | None = None
    device: str | None = None
    #: bf16 mixed precision (autocast); None: on a bf16-capable GPU only.
    bf16: bool | None = None
    #: Stop training after this many seconds of steps (None: no time limit).
    max_seconds: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _dataset(tokenizer: Any, items: Sequence[LabelledExample], max_length: int,
             invalid: dict[str, int] | None = None) -> tuple[Any, int]:
    """The tokenised dataset, and how many examples were skipped because even with their
    responses truncated the prompt does not fit ``max_length`` (counted in the report).

    Examples the task type refuses (real sets hold a few pairs with an empty response,
    e.g. HH helpful-base test-even line 61) are skipped too and counted per reason in
    ``invalid``, so one such row never stops a run."""
    from datasets import Dataset

    rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
    skipped = 0
    for item in items:
        try:
            tok = tokenize_example(tokenizer, item, max_length)
        except InvalidInput as exc:
            if exc.field != "max_length":
                if invalid is None:
                    raise
                invalid[str(exc)] = invalid.get(str(exc), 0) + 1
                continue
            skipped += 1
            continue
        rows["input_ids"].append(tok.input_ids)
        rows["labels"].append(tok.labels)
    if not rows["input_ids"]:
        raise InvalidInput("max_length", f"no training example fits in {max_length} tokens")
    return Dataset.from_dict(rows), skipped


def _dev_accuracy(model: Any, tokenizer: Any, dev: Sequence[dict[str, Any]], labels: Sequence[str],
                  max_length: int, device: str) -> dict[str, float]:
    """Pairwise accuracy and position consistency of ``model`` on dev pairs, via the scoring core."""
    from flame_reward.models.backends import TorchBackend
    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.models.loading import LoadedModel
    from flame_reward.results import Verdict
    from flame_reward.scoring import Scorer

    was_training = model.training
    model.eval()
    try:
        scorer = Scorer(TorchBackend(LoadedModel(model, tokenizer, "training", "", device, "float32")),
                        tokenizer, batch_size=8, max_length=max_length)
        results = scorer.judge("pairwise", dev, on_error="return")
        kept = [(v, lab) for v, lab in zip(results, labels) if isinstance(v, Verdict)]
        m = pairwise_metrics([v for v, _ in kept], [lab for _, lab in kept])
        return {"dev_accuracy": m.accuracy, "dev_position_consistency": m.position_consistency,
                "dev_first_order_accuracy": m.accuracy_first_order, "dev_pairs": len(kept),
                "dev_skipped_too_long": len(results) - len(kept)}
    finally:
        if was_training:
            model.train()


def target_only_loss(model: Any, inputs: dict[str, Any]) -> Any:
    """Cross-entropy on the target tokens, computing vocabulary logits only where needed.

    A judge's target is a couple of tokens (the verdict and end-of-turn) after hundreds of
    prompt tokens. Projecting every position onto the 49k-token vocabulary, as a generic
    LM loss does, costs more than the target needs by orders of magnitude (on a CPU the
    full-sequence logits dominated the step time); this runs the decoder body, then the
    output head on the few target positions only. Numerically it is the same loss.
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    hidden = base.get_decoder()(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")).last_hidden_state
    # Position t predicts token t+1.
    wanted = labels[:, 1:] != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][wanted]).float()
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:][wanted])


def latest_checkpoint(out: str | Path) -> str | None:
    """The newest ``checkpoint-N`` directory under ``out`` (for resuming), if any."""
    out = Path(out)
    if not out.is_dir():
        return None
    ckpts = [p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return str(max(ckpts, key=lambda p: int(p.name.split("-")[-1]))) if ckpts else None


def prepare_run(config: Any, train_items: Sequence[Any], loaded: Any = None) -> Any:
    """The common start of a training run (SFT or cached): refuse an empty run, set the
    thread count and seeds, and load ``config.model`` in fp32 unless ``loaded`` is given."""
    import torch

    if not train_items:
        raise InvalidInput("train_items", "no training examples")
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if loaded is None:
        from flame_reward.models.loading import load_model

        loaded = load_model(config.model, device=config.device, dtype="float32")
    return loaded


def train(
    config: TrainConfig,
    train_items: Sequence[LabelledExample],
    dev_pairs: Sequence[LabelledExample] = (),
    *,
    loaded: Any = None,
) -> dict[str, Any]:
    """Run LoRA SFT and save the adapter to ``<out>/adapter``; returns the run report.

    ``dev_pairs`` are pairwise examples of the dev split (one order each is enough: the
    scorer evaluates both). ``loaded`` is an already loaded :class:`LoadedModel` (tests
    pass a tiny model); by default ``config.model`` is loaded.
    """
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    loaded = prepare_run(config, train_items, loaded)
    tokenizer = loaded.tokenizer
    base = loaded.model
    if config.init_adapter:
        model = PeftModel.from_pretrained(base, config.init_adapter, is_trainable=True)
    else:
        model = get_peft_model(base, config.peft_config(base.config.num_hidden_layers))
    invalid: dict[str, int] = {}
    train_ds, skipped = _dataset(tokenizer, train_items, config.max_length, invalid)
    dev_examples = [{k: v for k, v in d.example.items()} for d in dev_pairs[: config.dev_pairs]]
    dev_labels = [d.label for d in dev_pairs[: config.dev_pairs]]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    on_gpu = loaded.device.startswith("cuda")
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        logging_steps=config.log_every,
        save_steps=config.save_every,
        save_total_limit=2,
        seed=config.seed,
        report_to=[],
        use_cpu=not on_gpu,
        bf16=config.bf16 if config.bf16 is not None else on_gpu and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        max_length=config.max_length + 8,
        completion_only_loss=False,
        disable_tqdm=False,
        remove_unused_columns=True,
    )
    history: list[dict[str, Any]] = []

    class DevAccuracy(TrainerCallback):
        trainer: Any = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if dev_examples and config.eval_every and state.global_step % config.eval_every == 0:
                metrics = _dev_accuracy(model, tokenizer, dev_examples, dev_labels, config.max_length, loaded.device)
                metrics["step"] = state.global_step
                history.append(metrics)
                if self.trainer is not None:
                    self.trainer.log({k: v for k, v in metrics.items() if k != "step"})

    class TimeBudget(TrainerCallback):
        started: float = 0.0
        stopped = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.time()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if config.max_seconds is not None and time.time() - self.started >= config.max_seconds:
                self.stopped = control.should_training_stop = True

    class JudgeSFTTrainer(SFTTrainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            # Accelerate applies mixed precision by wrapping model.forward, which the
            # target-only loss bypasses; without this context bf16 runs would compute in fp32.
            with self.accelerator.autocast():
                loss = target_only_loss(model, inputs)
            return (loss, None) if return_outputs else loss

    callback, budget = DevAccuracy(), TimeBudget()
    trainer = JudgeSFTTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                         callbacks=[callback, budget])
    callback.trainer = trainer
    before = _dev_accuracy(model, tokenizer, dev_examples, dev_labels, config.max_length, loaded.device) if dev_examples else {}
    started = time.time()
    resume = latest_checkpoint(out)
    result = trainer.train(resume_from_checkpoint=resume)
    elapsed = time.time() - started
    adapter_dir = out / "adapter"
    model.save_pretrained(str(adapter_dir))
    after = _dev_accuracy(model, tokenizer, dev_examples, dev_labels, config.max_length, loaded.device) if dev_examples else {}
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = sum(len(x) for x in train_ds["input_ids"])
    report = {
        "config": asdict(config),
        "examples": len(train_items),
        "skipped_too_long": skipped,
        "skipped_invalid": invalid,
        "tokens_per_epoch": tokens,
        "steps": trainer.state.global_step,
        "seconds": elapsed,
        "tokens_per_second": tokens * config.epochs / elapsed if elapsed > 0 and config.max_steps < 0 else None,
        "train_loss": result.training_loss,
        "bf16": bool(args.bf16),
        "stopped_by_time": budget.stopped,
        "first_losses": losses[:3],
        "last_losses": losses[-3:],
        "dev_before": before,
        "dev_after": after,
        "dev_history": history,
        "resumed_from": resume,
        "adapter": str(adapter_dir),
    }
    (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def mean_loss(report: dict[str, Any]) -> float:
    vals = report.get("last_losses") or []
    return sum(vals) / len(vals) if vals else math.nan


__all__ = ["TrainConfig", "latest_checkpoint", "train", "mean_loss"]
