"""Builds the model, optimizer, initial state and the jitted step from a config."""

import functools

import jax
import numpy as np

from pansharp_jax.models import registry
from pansharp_jax.train import optimizer as optimizer_lib, parallel
from pansharp_jax.train import schedule as schedule_lib
from pansharp_jax.train import state as state_lib, step as step_lib


def make_schedule(config):
  return schedule_lib.warmup_cosine_restarts(
      peak=config.optim.lr, warmup_steps=config.optim.warmup_steps,
      total_steps=config.num_train_steps, period=config.optim.restart_period,
      period_mult=config.optim.restart_mult, floor=config.optim.min_lr)


def make_init(config, model, optimizer, mesh):
  """Jitted `rng -> TrainState`, replicated over the mesh (reads no data)."""
  size, ratio, bands = (int(config.data.image_size), int(config.data.ratio),
                        int(config.data.num_bands))
  # Batch 1 is enough: parameter and model-state shapes do not depend on it.
  sample = {"ms": np.zeros((1, size // ratio, size // ratio, bands), np.float32),
            "pan": np.zeros((1, size, size, 1), np.float32),
            "lms": np.zeros((1, size, size, bands), np.float32)}
  # The program is ~150 random initialisers run once: XLA:CPU spends ~3x
  # longer optimising its code (over a minute for the tiny model) than
  # compiling it plainly, for no time worth saving at run time.
  return jax.jit(
      lambda rng: state_lib.init_state(model, optimizer, sample, rng),
      out_shardings=parallel.replicated(mesh),
      compiler_options={"xla_backend_optimization_level": 0})


def make_model_and_optimizer(config):
  """The model named by the config, its optimizer and the lr schedule."""
  model = registry.build_model(config.model, int(config.data.num_bands))
  schedule = make_schedule(config)
  return model, optimizer_lib.make_optimizer(config.optim, schedule), schedule


def build(config, mesh):
  """Model, optimizer, schedule and a replicated initial state."""
  model, optimizer, schedule = make_model_and_optimizer(config)
  init = make_init(config, model, optimizer, mesh)
  return model, optimizer, schedule, init(jax.random.PRNGKey(config.seed))


def jit_train_step(model, optimizer, config, mesh):
  """The train step, jitted with batch-sharded inputs and a donated state."""
  return jax.jit(
      step_lib.make_train_step(model, optimizer, config),
      in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
      out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
      donate_argnums=(0,))


def jit_predict(model):
  """The jitted eval-mode forward: (variables, batch) -> full-res output."""
  return jax.jit(functools.partial(step_lib.predict_fn, model=model))


def make_predict(model):
  """`predict(variables, batch)`: the eval-mode forward on this host's devices.

  Each batch is split over as many local devices as divide its size (all of
  them for a batch that is a multiple of the device count); the variables are
  replicated onto those devices once per variables object (from this host's
  replica when they live on a mesh of several hosts). Evaluation runs whole
  on every host, so no other host takes part.
  """
  forward = jit_predict(model)
  placed = {}  # device count -> (variables, their replicas on those devices)

  def predict(variables, batch):
    mesh = parallel.local_mesh(len(batch["pan"]))
    count = mesh.devices.size
    if count not in placed or placed[count][0] is not variables:
      placed[count] = (variables,
                       parallel.to_local(variables, mesh))
    inputs = jax.device_put({k: batch[k] for k in ("ms", "pan", "lms") if k in batch},
                            parallel.batch_sharding(mesh))
    return forward(placed[count][1], inputs)

  return predict
