"""Builds the model, optimizer, schedule and initial train state from a config."""

import functools

import jax
import numpy as np

from pansharp_jax.models import registry
from pansharp_jax.train import parallel, schedule as schedule_lib
from pansharp_jax.train import state as state_lib, step as step_lib


def build(config, mesh):
  """Model, optimizer, schedule and a sharded initial state (no data read)."""
  model = registry.build_model(config.model, int(config.data.num_bands))
  schedule = schedule_lib.warmup_cosine_restarts(
      peak=config.optim.lr, warmup_steps=config.optim.warmup_steps,
      total_steps=config.num_train_steps, period=config.optim.restart_period,
      period_mult=config.optim.restart_mult, floor=config.optim.min_lr)
  optimizer = state_lib.make_optimizer(config.optim, schedule)
  size, ratio, bands = (int(config.data.image_size), int(config.data.ratio),
                        int(config.data.num_bands))
  sample = {"ms": np.zeros((1, size // ratio, size // ratio, bands), np.float32),
            "pan": np.zeros((1, size, size, 1), np.float32),
            "lms": np.zeros((1, size, size, bands), np.float32)}
  init = jax.jit(functools.partial(state_lib.init_state, model, optimizer),
                 out_shardings=parallel.replicated(mesh))
  state = init(sample, jax.random.PRNGKey(config.seed))
  return model, optimizer, schedule, state


def make_predict(model):
  """Jitted eval-mode forward: (params, model_state, batch) -> full-res output."""
  return jax.jit(functools.partial(step_lib.predict_fn, model=model))
