"""The LoRA settings every training run shares: rank, scale, dropout, adapted layers and modules.

A run config inherits them (SFT, cached top-layer, DPO), so the fields keep their flat names
(``lora_r``, ``lora_alpha``, ...) in reports and run directories, and one method builds the
PEFT config from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(kw_only=True)
class LoraShape:
    """Rank, scale and how many top layers a LoRA adapts: what a self-improving loop passes on
    to the trainer it runs."""

    lora_r: int = 16
    lora_alpha: int = 32
    #: Adapt only the top N transformer layers (None: all): back-propagation then stops at
    #: the lowest adapted layer, so a step costs less (docs/training.md has the figure).
    top_layers: int | None = None

    def lora_shape(self) -> dict[str, Any]:
        """The three fields as keyword arguments for another config."""
        return {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "top_layers": self.top_layers}


@dataclass(kw_only=True)
class LoraSettings(LoraShape):
    """A trainer's full LoRA settings."""

    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES

    def adapted_layers(self, n_layers: int) -> list[int] | None:
        """The indices of the top ``top_layers`` of ``n_layers`` layers, or ``None`` for all."""
        return list(range(max(0, n_layers - self.top_layers), n_layers)) if self.top_layers else None

    def peft_config(self, n_layers: int) -> Any:
        """The ``peft.LoraConfig`` for a causal LM with ``n_layers`` layers."""
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), layers_to_transform=self.adapted_layers(n_layers),
                          task_type="CAUSAL_LM", bias="none")


__all__ = ["DEFAULT_TARGET_MODULES", "LoraSettings", "LoraShape"]
