"""Models picked by name from the config (big_vision style).

`pansharpener` is ours (three outputs, finest last); the field's reference
CNNs (`models/reference_cnns.py`) give one full-resolution output. Every
model takes `(ms, pan, lms=None, train=False)` and has a `world` attribute
(its WorldOptions: the loss terms it trains with).
"""

import dataclasses

import jax.numpy as jnp
import ml_collections

from pansharp_jax.models import options, pansharpener, reference_cnns, sizes, world

NAMES = ("pansharpener", *reference_cnns.NETWORKS)
# World options that change the pansharpener's architecture or inference
# (the others, DSC and WAC-X, are loss terms any network trains with).
ARCHITECTURE_OPTIONS = ("wsm", "dca", "patch_prior")


def foreign_options(name: str, world_options) -> list[str]:
  """The architecture options switched on that model `name` does not have."""
  if name == "pansharpener":
    return []
  return [o for o in ARCHITECTURE_OPTIONS if getattr(world_options, o)]


def build_model(model_config: ml_collections.ConfigDict, num_bands: int):
  """The Flax module named by `model_config.name` (the pansharpener at
  `model_config.size`; the reference CNNs have their papers' one size)."""
  if model_config.name not in NAMES:
    raise ValueError(f"config.model.name: unknown model {model_config.name!r}")
  world_options = world.world_options(model_config.get("world"))
  dtype = jnp.dtype(model_config.dtype)
  if model_config.name in reference_cnns.NETWORKS:
    on = foreign_options(model_config.name, world_options)
    if on:
      raise ValueError(f"config.model.world: {', '.join(on)} belong to the "
                       f"pansharpener, not to model.name={model_config.name}")
    return reference_cnns.NETWORKS[model_config.name](
        num_bands=num_bands, world=world_options, dtype=dtype)
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
  if model_config.get("dim", 0):
    size = dataclasses.replace(size, dim=int(model_config.dim))
  return pansharpener.Pansharpener(
      num_bands=num_bands,
      size=size,
      blocks=blocks,
      world=world_options,
      head=model_config.get("head", "sigmoid"),
      input_norm=model_config.get("input_norm", "none"),
      detail_input=model_config.get("detail_input", "none"),
      dtype=dtype)
