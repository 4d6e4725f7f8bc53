"""Model loading (HF directory or id, the embedded default) and scoring backends."""

from flame_reward.models.embedded import cache_dir, embedded_model_dir
from flame_reward.models.loading import LoadedModel, load_model

__all__ = ["LoadedModel", "cache_dir", "embedded_model_dir", "load_model"]
