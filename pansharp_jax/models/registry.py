"""Models picked by name from the config (big_vision style)."""

import jax.numpy as jnp
import ml_collections

from pansharp_jax.models import conv_gppnn


def build_model(model_config: ml_collections.ConfigDict, num_bands: int):
  """The Flax module named by `model_config.name`, at `model_config.size`."""
  dtype = jnp.dtype(model_config.dtype)
  if model_config.name == "conv_gppnn":
    return conv_gppnn.ConvGPPNN(num_bands=num_bands,
                                dim=conv_gppnn._SIZES[model_config.size],
                                dtype=dtype)
  raise ValueError(f"config.model.name: unknown model {model_config.name!r}")
