"""Mamba's parameter initialisers, as Flax initialisers `(key, shape, dtype)`.

Use them in a Linen module as, e.g.,
`self.param("A_log", a_log_init, (channels, d_state))` and keep the
parameters float32 (the defaults here), also under bf16 activations.
"""

import math

import jax
import jax.numpy as jnp


def dt_rank(d_model):
  """Rank of the low-rank delta projection: ceil(d_model / 16)."""
  return math.ceil(d_model / 16)


def a_log_init(key, shape, dtype=jnp.float32):
  """A_log[d, n] = log(n + 1), so A = -exp(A_log) = -(1, 2, ..., N) per channel.

  Args:
    key: unused (deterministic), kept for the initialiser signature.
    shape: (channels, d_state).
    dtype: parameter dtype.
  """
  del key
  channels, d_state = shape
  a = jnp.arange(1, d_state + 1, dtype=jnp.float32)
  return jnp.log(jnp.broadcast_to(a, (channels, d_state))).astype(dtype)


def d_init(key, shape, dtype=jnp.float32):
  """The skip weight D: ones, shape (channels,)."""
  del key
  return jnp.ones(shape, dtype)


def dt_bias_init(dt_min=1e-3, dt_max=1e-1, dt_floor=1e-4):
  """Returns an initialiser for the delta bias.

  softplus(bias) is dt sampled log-uniformly in [dt_min, dt_max] (at least
  dt_floor), so the first steps span short and long memory.
  """
  def init(key, shape, dtype=jnp.float32):
    log_dt = jax.random.uniform(key, shape, jnp.float32, math.log(dt_min),
                                math.log(dt_max))
    dt = jnp.maximum(jnp.exp(log_dt), dt_floor)
    # Inverse softplus: x = log(exp(dt) - 1) = dt + log(1 - exp(-dt)).
    return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)
  return init


def dt_kernel_init(rank, dt_scale=1.0):
  """Returns an initialiser for the (rank, channels) delta projection:
  uniform in +-dt_scale / sqrt(rank), so delta starts near its bias."""
  bound = dt_scale * rank**-0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, jnp.float32, -bound,
                              bound).astype(dtype)
  return init
