"""Settings both self-improving loops share: sampling, dev measurement, training shape, machine.

Each loop's config (``SelfTaughtConfig``, ``MetaRewardConfig``) adds its own fields; the
shared ones are keyword-only so a loop's own required ``out`` can stay first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from flame_reward.errors import InvalidInput
from flame_reward.selfimprove.evaluation import DEFAULT_DEV_SETS
from flame_reward.train.lora import LoraShape


@dataclass(kw_only=True)
class LoopSettings(LoraShape):
    """What every self-improving run is also configured by (one place for defaults and checks)."""

    iterations: int = 1
    max_new_tokens: int = 96
    judge_temperature: float = 0.8
    top_p: float = 0.95
    dev_sets: tuple[str, ...] = DEFAULT_DEV_SETS
    dev_limit: int | None = 40
    templates: str | None = None
    max_length: int = 1024
    batch_size: int = 8
    max_steps: int = -1
    seed: int = 0
    threads: int | None = None
    device: str | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    #: Integer settings that must be >= 1 (a loop adds its own, e.g. ``samples``).
    positive: ClassVar[tuple[str, ...]] = ("iterations", "max_new_tokens", "batch_size", "train_batch_size")

    def check(self) -> None:
        """Raise :class:`InvalidInput`, naming the CLI flag, for a setting out of range."""
        for name in self.positive:
            if getattr(self, name) < 1:
                raise InvalidInput(f"--{name.replace('_', '-')}", f"must be >= 1, got {getattr(self, name)}")
        if self.dev_limit is not None and self.dev_limit < 1:
            raise InvalidInput("--dev-limit", f"must be >= 1, got {self.dev_limit}")
        if self.judge_temperature < 0:
            raise InvalidInput("--judge-temperature", "must be >= 0")


@dataclass
class LoopStart:
    """What a loop opens before its first iteration (see :func:`start_loop`)."""

    templates: Any
    pool: Any
    start_adapter: str | None
    run: Any
    models: Any


def start_loop(cfg: LoopSettings, kind: str, *, out: str, source: str, pool_key: str, model: str | None, adapter: str | None,
               adapter_field: str, loader: Any = None) -> LoopStart:
    """Check ``cfg``, load the templates and the instruction pool, resolve the starting
    adapter and open the resumable run directory (its fingerprint: every setting but ``out``,
    ``extra`` and the adapter field, plus the resolved adapter, templates digest and pool size
    under ``pool_key``) and the model cache both loops share."""
    from dataclasses import asdict

    from flame_reward.models.heads import is_head_dir
    from flame_reward.models.loading import resolve_adapter
    from flame_reward.selfimprove import models as model_loading
    from flame_reward.selfimprove.instructions import load_instructions
    from flame_reward.selfimprove.steps import RunDir
    from flame_reward.selfimprove.templates import load_templates

    cfg.check()
    templates = load_templates(cfg.templates)
    pool = load_instructions(source)
    start_adapter = resolve_adapter(model, adapter)
    if start_adapter and is_head_dir(start_adapter):
        # The loops fine-tune LoRA weights; verdict heads are not LoRA weights to start from.
        start_adapter = None
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "extra", adapter_field)}
    settings.update({"start_adapter": start_adapter, "templates_sha256": templates.digest(), pool_key: len(pool.items)})
    run = RunDir(cfg.out, kind, settings,
                 free=("iterations", "threads", "batch_size", "progress", "device"), echo=cfg.progress)
    models = model_loading.Models(loader or model_loading.default_loader(cfg.device), threads=cfg.threads,
                                  batch_size=cfg.batch_size, max_length=cfg.max_length, progress=cfg.progress)
    return LoopStart(templates, pool, start_adapter, run, models)


def shared_settings(args: Any) -> dict[str, Any]:
    """The :class:`LoopSettings` fields from parsed CLI arguments (same flag names)."""
    return {
        "iterations": args.iterations, "max_new_tokens": args.max_new_tokens, "judge_temperature": args.judge_temperature,
        "top_p": args.top_p, "dev_sets": args.dev_sets, "dev_limit": args.dev_limit, "templates": args.templates,
        "max_length": args.max_length, "batch_size": args.batch_size, "max_steps": args.max_steps, "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha, "top_layers": args.top_layers, "seed": args.seed, "threads": args.threads,
        "device": args.device, "progress": not args.quiet,
    }


__all__ = ["LoopSettings", "LoopStart", "shared_settings", "start_loop"]
