"""The train state: everything a step reads and writes, and what a checkpoint holds."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  model_state: Any   # non-param collections (e.g. the WSM 'world_state')
  rng: jax.Array


def make_optimizer(optim_config, schedule: optax.Schedule):
  """AdamW with global-norm clipping."""
  return optax.chain(
      optax.clip_by_global_norm(optim_config.clip_norm),
      optax.adamw(schedule, b1=optim_config.b1, b2=optim_config.b2,
                  weight_decay=optim_config.weight_decay))


def init_state(model, optimizer, sample_batch, rng) -> TrainState:
  """Initialises params, EMA, optimizer and model state from one batch's shapes."""
  init_rng, gumbel_rng, dropout_rng, rng = jax.random.split(rng, 4)
  variables = model.init(
      {"params": init_rng, "gumbel": gumbel_rng, "dropout": dropout_rng},
      sample_batch["ms"], sample_batch["pan"], sample_batch["lms"], train=False)
  variables = dict(variables)
  params = variables.pop("params")
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=params, opt_state=optimizer.init(params),
                    model_state=variables, rng=rng)
