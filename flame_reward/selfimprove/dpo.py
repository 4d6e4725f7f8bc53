"""DPO with LoRA on TRL's ``DPOTrainer`` (the Meta-Rewarding training step).

Pairs are ``{"prompt", "chosen", "rejected"}`` where ``prompt`` is the full prompt
string the model sees (its chat template applied, exactly as the sampler or the scoring
core built it) and the completions are plain text; TRL appends the end-of-turn token.
Starting from an adapter, the adapter is trained further and TRL's frozen copy of it is
the reference policy; starting without one, a fresh LoRA is trained and the base model
(adapters disabled) is the reference. Checkpoints land in ``<out>/checkpoint-*`` and a
re-run resumes from the newest; the adapter is saved to ``<out>/adapter``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.train.lora import LoraSettings
from flame_reward.train.sft import latest_checkpoint


@dataclass
class DPOTrainConfig(LoraSettings):
    """Everything a DPO run depends on (written into its report)."""

    out: str
    init_adapter: str | None = None
    max_length: int = 1024
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    grad_accum: int = 1
    learning_rate: float = 5e-5
    beta: float = 0.1
    seed: int = 0
    save_every: int = 50
    log_every: int = 1
    threads: int | None = None


def train_dpo(config: DPOTrainConfig, pairs: Sequence[Mapping[str, str]], loaded: Any) -> dict[str, Any]:
    """Train ``loaded`` (a raw :class:`~flame_reward.models.loading.LoadedModel`, no adapter
    merged) on ``pairs`` with DPO; returns the run report (also ``<out>/dpo_report.json``)."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise InvalidInput("pairs", "no preference pairs to train on")
    for i, p in enumerate(pairs):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(p.get(key), str) or not p[key].strip():
                raise InvalidInput(key, f"pair {i}: must be a non-empty string")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    tokenizer = loaded.tokenizer
    base = loaded.model
    peft_config = None
    if config.init_adapter:
        model = PeftModel.from_pretrained(base, config.init_adapter, is_trainable=True)
    else:
        peft_config = config.peft_config(base.config.num_hidden_layers)
        model = base
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    on_gpu = str(loaded.device).startswith("cuda")
    args = DPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        beta=config.beta,
        max_length=config.max_length,
        logging_steps=config.log_every,
        save_steps=config.save_every,
        save_total_limit=2,
        seed=config.seed,
        report_to=[],
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    dataset = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                                 for p in pairs])
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft_config)
    resume = latest_checkpoint(out)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    elapsed = time.time() - started
    adapter_dir = out / "adapter"
    trainer.model.save_pretrained(str(adapter_dir), selected_adapters=["default"])
    logs = [h for h in trainer.state.log_history if "loss" in h]

    def series(key: str) -> list[float]:
        return [float(h[key]) for h in logs if key in h and not math.isnan(float(h[key]))]

    report = {
        "config": asdict(config),
        "pairs": len(pairs),
        "steps": trainer.state.global_step,
        "seconds": elapsed,
        "train_loss": result.training_loss,
        "first_losses": series("loss")[:3],
        "last_losses": series("loss")[-3:],
        "reward_accuracy_last": (series("rewards/accuracies") or [None])[-1],
        "reward_margin_last": (series("rewards/margins") or [None])[-1],
        "resumed_from": resume,
        "adapter": str(adapter_dir),
    }
    (out / "dpo_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


__all__ = ["DPOTrainConfig", "train_dpo"]
