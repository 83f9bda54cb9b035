"""The train step compiled for an NVIDIA GPU that is not here (deviceless).

XLA's CUDA compiler runs on any host given a description of the GPU
(ops/gpu_targets.py): `jax.experimental.topologies` makes compile-only
devices of that GPU, a mesh over them takes the shardings, and
`jax.jit(...).lower(...).compile()` builds the real GPU program (cubins
through ptxas, the fused scan's Mosaic GPU kernels included) whose
`memory_analysis()` the probe reads. Nothing can run on those devices.

The process must not start CUDA (the plugin would, and fail without cuDNN):
`compile_on_cpu()` before anything starts a backend. Programs are traced
inside `backend.tracing_for("gpu")`, so every "auto" path is the GPU's.
"""

import os

import jax

from pansharp_jax.errors import ConfigError
from pansharp_jax.ops import backend, gpu_targets
from pansharp_jax.train import builder, parallel

# JAX's GPU allocator takes this share of the memory unless told otherwise,
# so a device reports `bytes_limit` = total x fraction.
_CLIENT_FRACTION = ("XLA_PYTHON_CLIENT_MEM_FRACTION", 0.75)


ATTENTION_NOTE = ("attention: chunked (cuDNN's attention graph is built on "
                  "the device, so a deviceless compile takes the fallback)")


def compile_on_cpu() -> None:
  """Keeps this process on the CPU backend, so the CUDA plugin only compiles.

  Also turns the persistent compilation cache off: a deviceless executable
  is written to it but cannot be read back without a GPU client.
  """
  jax.config.update("jax_platforms", "cpu")
  jax.config.update("jax_enable_compilation_cache", False)


def deviceless_config(config):
  """`config` as a deviceless compile builds it: attention "auto" (cuDNN on
  a GPU) becomes "chunked"; "cudnn" cannot be compiled without the device."""
  if config.model.attn_impl == "cudnn":
    raise ConfigError(
        "config.model.attn_impl: 'cudnn' cannot be compiled without a GPU "
        "(cuDNN builds its attention graph on the device); use auto or chunked "
        "with probe.target")
  config = config.copy_and_resolve_references()
  if config.model.attn_impl == "auto":
    config.model.attn_impl = "chunked"
  return config


def target_mesh(name: str, num_devices: int = 1) -> jax.sharding.Mesh:
  """The data-parallel mesh of `num_devices` target GPUs."""
  return parallel.data_mesh(gpu_targets.topology(name, num_devices).devices)


def allocator_limit(name: str) -> tuple[int, str]:
  """Bytes JAX's allocator would allow on the target and how that was set.

  The same figure a device probe reads as `bytes_limit`: the total memory
  times XLA_PYTHON_CLIENT_MEM_FRACTION (JAX's default 0.75).
  """
  target = gpu_targets.get(name)
  variable, default = _CLIENT_FRACTION
  fraction = float(os.environ.get(variable) or default)
  return int(target.memory_bytes * fraction), (
      f"{target.description} {target.memory_bytes / 2**30:.2f} GiB x "
      f"{fraction:g} {variable}, compiled deviceless")


def lower_train_step(config, batch_size: int, target: str, num_devices: int = 1):
  """The config's train step at global `batch_size`, lowered for
  `num_devices` `target` GPUs (`.compile()` it for the executable)."""
  config = deviceless_config(config)
  mesh = target_mesh(target, num_devices)
  with backend.tracing_for("gpu"):
    model, optimizer, _ = builder.make_model_and_optimizer(config)
    step = builder.jit_train_step(model, optimizer, config, mesh)
    state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                           jax.random.PRNGKey(0))
    return step.lower(state, parallel.abstract_batch(config, batch_size, mesh))


def lower_forward(config, batch_size: int, target: str):
  """The eval-mode forward of evaluate and predict on one `target` GPU."""
  config = deviceless_config(config)
  mesh = target_mesh(target, 1)
  with backend.tracing_for("gpu"):
    model, optimizer, _ = builder.make_model_and_optimizer(config)
    state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                           jax.random.PRNGKey(0))
    variables = {"params": state.ema_params, **state.model_state}
    batch = {k: v for k, v in parallel.abstract_batch(
        config, batch_size, mesh).items() if k != "gt"}
    return builder.jit_predict(model).lower(variables, batch)
