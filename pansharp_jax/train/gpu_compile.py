"""The train step compiled for an NVIDIA GPU that is not here (deviceless).

XLA's CUDA compiler runs on any host given a description of the GPU
(ops/gpu_targets.py): `jax.experimental.topologies` makes compile-only
devices of that GPU, a mesh over them takes the shardings, and
`jax.jit(...).lower(...).compile()` builds the real GPU program (cubins
through ptxas, the fused scan's Mosaic GPU kernels included) whose
`memory_analysis()` the probe reads. Nothing can run on those devices.

Needs the CUDA plugin wheels of the installed jax and ptxas: `pip install
-e ".[gpu-compile]"` (jax finds the `nvidia-cuda-nvcc-cu12` wheel's ptxas
itself). The process must not start CUDA (the plugin would, and fail without
cuDNN): `compile_on_cpu()` before anything starts a backend.
"""

import importlib.util
import os
import shutil

import jax
from jax.experimental import topologies

from pansharp_jax.errors import ConfigError
from pansharp_jax.ops import gpu_targets
from pansharp_jax.train import parallel

INSTALL = 'pip install -e ".[gpu-compile]"'
_PLUGINS = ("jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13")
# JAX's GPU allocator takes this share of the memory unless told otherwise,
# so a device reports `bytes_limit` = total x fraction.
_CLIENT_FRACTION = ("XLA_PYTHON_CLIENT_MEM_FRACTION", 0.75)


def compile_on_cpu() -> None:
  """Keeps this process on the CPU backend, so the CUDA plugin only compiles."""
  jax.config.update("jax_platforms", "cpu")


def ptxas_path() -> str | None:
  """The ptxas XLA would use: the nvcc wheel's (or $CUDA_ROOT's), PATH's, or
  /usr/local/cuda's, as XLA searches; None if there is none."""
  roots = [os.environ.get("CUDA_ROOT")]
  spec = _spec("nvidia.cuda_nvcc")
  roots += list(spec.submodule_search_locations or []) if spec else []
  for root in filter(None, roots):
    if os.access(os.path.join(root, "bin", "ptxas"), os.X_OK):
      return os.path.join(root, "bin", "ptxas")
  found = shutil.which("ptxas")
  if found:
    return found
  default = "/usr/local/cuda/bin/ptxas"
  return default if os.access(default, os.X_OK) else None


def _spec(module: str):
  try:
    return importlib.util.find_spec(module)
  except (ImportError, ValueError):  # a parent package is missing
    return None


def missing() -> str | None:
  """What a deviceless CUDA compile lacks here, or None."""
  if not any(_spec(p) for p in _PLUGINS):
    return (f"the CUDA plugin of jax {jax.__version__} is not installed "
            f"(jax-cuda12-plugin and jax-cuda12-pjrt {jax.__version__}): {INSTALL}")
  if ptxas_path() is None:
    return f"ptxas is not installed (the nvidia-cuda-nvcc-cu12 wheel): {INSTALL}"
  return None


def require(field: str = "probe.target") -> None:
  """ConfigError naming `field` unless a deviceless compile can run here."""
  reason = missing()
  if reason:
    raise ConfigError(f"config.{field}: compiling for a GPU without one needs "
                      f"{reason}")


def topology(name: str, num_devices: int = 1):
  """Compile-only devices: `num_devices` GPUs called `name` on one host."""
  require()
  return topologies.get_topology_desc(
      platform="cuda", target_config=gpu_targets.target_config(name),
      topology=f"1x1x{num_devices}")


def target_mesh(name: str, num_devices: int = 1) -> jax.sharding.Mesh:
  """The data-parallel mesh of `num_devices` target GPUs."""
  return parallel.data_mesh(topology(name, num_devices).devices)


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
