"""The train state: everything a step reads and writes, and what a checkpoint holds."""

from typing import Any

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  """One run's mutable state; the grain iterator is checkpointed beside it."""

  step: jax.Array          # batches consumed (int32)
  params: Any
  ema_params: Any          # used for validation and the exported best model
  opt_state: Any
  model_state: Any         # non-param collections (the WSM 'world_state')
  rng: jax.Array           # base key; each step folds its index in
  best_metric: jax.Array   # best validation value so far (NaN before any)
  nonfinite: jax.Array     # non-finite steps in a row (int32)


def init_state(model, optimizer, sample_batch, rng) -> TrainState:
  """Initialises params, EMA, optimizer and model state from one batch's shapes."""
  init_rng, gumbel_rng, dropout_rng, rng = jax.random.split(rng, 4)
  variables = dict(model.init(
      {"params": init_rng, "gumbel": gumbel_rng, "dropout": dropout_rng},
      sample_batch["ms"], sample_batch["pan"], sample_batch["lms"], train=False))
  params = variables.pop("params")
  state = TrainState(
      step=jnp.zeros((), jnp.int32), params=params, ema_params=params,
      opt_state=optimizer.init(params), model_state=variables, rng=rng,
      best_metric=jnp.full((), jnp.nan, jnp.float32),
      nonfinite=jnp.zeros((), jnp.int32))
  # Strong dtypes everywhere, so a restored state has the same avals as a
  # fresh one and the compiled step is reused.
  return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), state)
