"""Execution backends: the one place that runs the model's forward pass.

A backend turns batches of token ids into log-probabilities of chosen tokens at the last
positions, and generates text. The scoring core knows nothing else about the model, so
another runtime (ONNX Runtime) slots in behind the same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from flame_reward.models.loading import LoadedModel


class Backend(Protocol):
    """What the scoring core needs from a runtime."""

    name: str
    pad_token_id: int

    def token_logprobs(self, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int]) -> torch.Tensor:
        """Log-softmax over the vocabulary at each row's last ``keep`` positions, restricted
        to ``token_ids``: a float32 tensor ``[rows, keep, len(token_ids)]``."""
        ...

    def generate(self, batch: Sequence[Sequence[int]], **kwargs: Any) -> list[list[int]]:
        """Generated continuations (new tokens only), one list per input row and sample."""
        ...


def left_pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad so every row's last real token sits in the last column.

    Left padding is what lets one ``logits_to_keep`` slice read every row's verdict slot;
    explicit position ids make a padded row compute exactly what it computes alone.
    """
    width = max(len(row) for row in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


class TorchBackend:
    """PyTorch/transformers runtime (CPU fp32, or CUDA bf16)."""

    name = "torch"

    def __init__(self, loaded: LoadedModel, threads: int | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.device = loaded.device
        tok = loaded.tokenizer
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def token_logprobs(self, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int]) -> torch.Tensor:
        ids, mask, positions = left_pad(batch, self.pad_token_id)
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            logits_to_keep=keep,
            use_cache=False,
        )
        logits = out.logits[:, -keep:, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        index = torch.tensor(list(token_ids), dtype=torch.long, device=logp.device)
        return logp.index_select(-1, index).cpu()

    @torch.inference_mode()
    def generate(
        self,
        batch: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int | None = None,
    ) -> list[list[int]]:
        ids, mask, _ = left_pad(batch, self.pad_token_id)
        if seed is not None:
            torch.manual_seed(seed)
        sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_new_tokens,
                                  "num_return_sequences": num_samples, "pad_token_id": self.pad_token_id}
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        new = out[:, ids.shape[1]:].cpu().tolist()
        eos = {self.loaded.tokenizer.eos_token_id, self.pad_token_id}
        trimmed = []
        for row in new:
            cut = next((i for i, t in enumerate(row) if t in eos), len(row))
            trimmed.append(row[:cut])
        return trimmed
