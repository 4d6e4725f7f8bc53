"""Judge models: loading (a Hugging Face directory or id, the embedded default), the
runtimes that run their forward pass (:mod:`~flame_reward.models.backends`: torch and ONNX
Runtime), and the ONNX judge directory (:mod:`~flame_reward.models.onnx_format` reads and
checks it, :mod:`~flame_reward.models.onnx_export` writes it).

Only the loading names are exported here; the backends import torch, so they are imported
from their module when used.
"""

from flame_reward.models.embedded import cache_dir, embedded_model_dir
from flame_reward.models.loading import LoadedModel, load_model

__all__ = ["LoadedModel", "cache_dir", "embedded_model_dir", "load_model"]
