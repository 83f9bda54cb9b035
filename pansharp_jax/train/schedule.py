"""Learning-rate schedule: linear warmup, then cosine with warm restarts (SGDR)."""

import jax.numpy as jnp
import optax

from pansharp_jax.config_checks import EPOCH_FIELDS


def epochs_to_steps(config, train_size: int, batch_size: int):
  """A copy of `config` whose optim fields in epochs are given in steps.

  An epoch is train_size / batch_size steps (the input pipeline batches
  across epoch ends); each field is rounded to a whole step, at least 1 (a
  field that is set never vanishes).
  Returns `config` itself when no field counts epochs. Elsewhere (evaluate,
  predict, the memory probe) the schedule's values are never applied, so
  those build it from the steps fields alone.
  """
  if not any(config.optim[name] for name in EPOCH_FIELDS):
    return config
  config = config.copy_and_resolve_references()
  steps_per_epoch = train_size / batch_size
  for epochs_field, steps_field in EPOCH_FIELDS.items():
    epochs = config.optim[epochs_field]
    if epochs:
      config.optim[steps_field] = max(1, round(epochs * steps_per_epoch))
      config.optim[epochs_field] = 0.0
  return config


def warmup_cosine_restarts(*, peak: float, warmup_steps: int, total_steps: int,
                           period: int, period_mult: float,
                           floor: float) -> optax.Schedule:
  """Linear warmup to `peak`, then cosine cycles decaying to `floor`.

  Cycle k lasts `period * period_mult**k` steps and starts again at `peak`
  (SGDR's T_0 and T_mult). `period=0` means a single cosine over the rest of
  training, ending at `floor`.
  """
  decay_steps = max(total_steps - warmup_steps, 1)

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    warm = peak * jnp.minimum(1.0, (step + 1) / max(warmup_steps, 1))
    t = jnp.maximum(step - warmup_steps, 0.0)
    if not period:
      cycle_start, cycle_len = 0.0, float(decay_steps)
    elif period_mult == 1:
      cycle_start, cycle_len = jnp.floor(t / period) * period, float(period)
    else:
      # Index of the cycle containing t: sum_{i<k} period*m^i <= t.
      k = jnp.floor(jnp.log1p(t / period * (period_mult - 1)) /
                    jnp.log(period_mult))
      cycle_start = period * (period_mult**k - 1) / (period_mult - 1)
      cycle_len = period * period_mult**k
    progress = jnp.clip((t - cycle_start) / cycle_len, 0.0, 1.0)
    cosine = floor + 0.5 * (peak - floor) * (1 + jnp.cos(jnp.pi * progress))
    return jnp.where(step < warmup_steps, warm, cosine)

  return schedule
