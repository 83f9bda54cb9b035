"""Models picked by name from the config (big_vision style)."""

import dataclasses

import jax.numpy as jnp
import ml_collections

from pansharp_jax.models import options, pansharpener, sizes, world


NAMES = ("pansharpener",)


def build_model(model_config: ml_collections.ConfigDict, num_bands: int):
  """The Flax module named by `model_config.name`, at `model_config.size`."""
  if model_config.name not in NAMES:
    raise ValueError(f"config.model.name: unknown model {model_config.name!r}")
  blocks = options.BlockOptions(
      directions=int(model_config.directions),
      scan_method=model_config.scan_method,
      scan_chunk=int(model_config.scan_chunk),
      attn_impl=model_config.attn_impl,
      attn_chunk=int(model_config.attn_chunk),
      dropout=float(model_config.dropout),
      remat=bool(model_config.remat),
      scan_layers=bool(model_config.scan_layers))
  size = sizes.get_size(model_config.size)
  if model_config.get("depth", 0):
    size = dataclasses.replace(size, depth=int(model_config.depth))
  return pansharpener.Pansharpener(
      num_bands=num_bands,
      size=size,
      blocks=blocks,
      world=world.world_options(model_config.get("world")),
      dtype=jnp.dtype(model_config.dtype))
