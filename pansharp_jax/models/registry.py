"""Models picked by name from the config (big_vision style).

`pansharpener` is ours (three outputs, finest last); the field's reference
CNNs (`models/reference_cnns.py`) give one full-resolution output. Every
model takes `(ms, pan, lms=None, train=False)` and has a `world` attribute
(its WorldOptions: the loss terms it trains with).
"""


import jax.numpy as jnp
import ml_collections

from pansharp_jax.models import functional, options, pansharpener
from pansharp_jax.models import reference_cnns, sizes, world


def names() -> tuple[str, ...]:
  """The model names: ours and NETWORKS' (read at each call, so a network
  registered there is known everywhere)."""
  return ("pansharpener", *reference_cnns.NETWORKS)


# World options that change the pansharpener's architecture or inference
# (the others, DSC and WAC-X, are loss terms any network trains with).
ARCHITECTURE_OPTIONS = ("wsm", "dca", "patch_prior")


def foreign_options(name: str, world_options) -> list[str]:
  """The architecture options switched on that model `name` does not have."""
  if name == "pansharpener":
    return []
  return [o for o in ARCHITECTURE_OPTIONS if getattr(world_options, o)]


def build_model(model_config: ml_collections.ConfigDict, num_bands: int):
  """The NNX network named by `model_config.name` as a `FunctionalModel`
  (`init`, `apply` over pure state): the pansharpener at `model_config.size`;
  the reference CNNs have their papers' one size."""
  if model_config.name not in names():
    raise ValueError(f"config.model.name: unknown model {model_config.name!r}")
  world_options = world.world_options(model_config.get("world"))
  dtype = jnp.dtype(model_config.dtype)
  if model_config.name in reference_cnns.NETWORKS:
    on = foreign_options(model_config.name, world_options)
    if on:
      raise ValueError(f"config.model.world: {', '.join(on)} belong to the "
                       f"pansharpener, not to model.name={model_config.name}")
    network = reference_cnns.NETWORKS[model_config.name]
    return functional.FunctionalModel(
        lambda ratio, rngs: network(num_bands, ratio, dtype=dtype, rngs=rngs),
        world_options)
  blocks = options.BlockOptions(
      directions=int(model_config.directions),
      scan_method=model_config.scan_method,
      scan_chunk=int(model_config.scan_chunk),
      attn_impl=model_config.attn_impl,
      attn_chunk=int(model_config.attn_chunk),
      dropout=float(model_config.dropout),
      remat=bool(model_config.remat),
      scan_layers=bool(model_config.scan_layers))
  size = sizes.resolve(model_config)
  # Read now: the model is built later (per ratio), from these values only.
  chosen = {option: model_config.get(option, default)
            for option, default in pansharpener.CONFIG_OPTIONS.items()}
  return functional.FunctionalModel(
      lambda ratio, rngs: pansharpener.Pansharpener(
          num_bands, size, blocks, world_options, **chosen, dtype=dtype,
          rngs=rngs),
      world_options)
