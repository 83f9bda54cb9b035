"""The NVIDIA GPUs a host without one can compile for, and what it needs.

XLA compiles for a GPU that is not there ("deviceless") from a text-format
GpuTargetConfigProto describing it; `target_config(name)` writes that text
from the facts below (NVIDIA's datasheets and architecture whitepapers for
the H100 SXM5, H200 SXM and A100 SXM4 80GB; memory as CUDA reports its
total, e.g. nvidia-smi's 81559 MiB for an H100 80GB HBM3). The same facts
give the roofline peaks of the benchmarks (dense bf16 tensor throughput, HBM
bandwidth). `topology(name)` gives compile-only devices of that GPU; it
needs the CUDA plugin wheels of the installed jax and ptxas (`INSTALL`; jax
points XLA at the `nvidia-cuda-nvcc-cu12` wheel's ptxas itself).
"""

import dataclasses
import importlib.util
import os
import shutil

import jax
from jax.experimental import topologies

from pansharp_jax.errors import ConfigError

MIB = 2**20
INSTALL = 'pip install -e ".[gpu-compile]"'
_PLUGINS = ("jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13")
DEFAULT_PTXAS = "/usr/local/cuda/bin/ptxas"  # XLA's last place to look


@dataclasses.dataclass(frozen=True)
class GpuTarget:
  name: str
  description: str            # CUDA's device name (jax's device_kind)
  compute_capability: tuple   # (major, minor); Hopper compiles to sm_90a
  memory_bytes: int           # total device memory as CUDA reports it
  sm_count: int
  fp32_cores_per_sm: int
  boost_clock_ghz: float
  hbm_bytes_per_s: float
  l2_bytes: int
  smem_per_sm: int            # shared memory per SM (bytes)
  smem_per_block_optin: int   # the most one block may opt in to (bytes)
  bf16_dense_flops: float     # tensor-core peak without sparsity

  @property
  def registers_per_thread(self) -> int:
    return 255                # every CUDA architecture since Kepler


TARGETS = {t.name: t for t in (
    GpuTarget("h100", "NVIDIA H100 80GB HBM3", (9, 0), 81559 * MIB, 132, 128,
              1.98, 3.35e12, 50 * MIB, 228 * 1024, 227 * 1024, 989.4e12),
    GpuTarget("h200", "NVIDIA H200", (9, 0), 143771 * MIB, 132, 128, 1.98,
              4.8e12, 50 * MIB, 228 * 1024, 227 * 1024, 989.4e12),
    GpuTarget("a100", "NVIDIA A100-SXM4-80GB", (8, 0), 81920 * MIB, 108, 64,
              1.41, 2.039e12, 40 * MIB, 164 * 1024, 163 * 1024, 312e12),
)}
# Registers per SM and per block, threads per SM and per block are the same
# on all three (64K, 64K, 2048, 1024), as is the 48 KiB default shared
# memory of a block without opt-in.


def get(name: str) -> GpuTarget:
  """The target called `name`; ValueError naming the known ones otherwise."""
  try:
    return TARGETS[str(name).lower()]
  except KeyError:
    raise ValueError(f"unknown GPU {name!r}; one of "
                     f"{', '.join(sorted(TARGETS))}") from None


def target_config(name: str) -> str:
  """The GpuTargetConfigProto text of `name` for XLA's deviceless compile."""
  t = get(name)
  major, minor = t.compute_capability
  return "\n".join([
      "gpu_device_info {",
      "  threads_per_block_limit: 1024",
      "  threads_per_warp: 32",
      "  shared_memory_per_block: 49152",
      f"  shared_memory_per_core: {t.smem_per_sm}",
      f"  shared_memory_per_block_optin: {t.smem_per_block_optin}",
      "  threads_per_core_limit: 2048",
      f"  core_count: {t.sm_count}",
      f"  fpus_per_core: {t.fp32_cores_per_sm}",
      "  block_dim_limit_x: 2147483647",
      "  block_dim_limit_y: 65535",
      "  block_dim_limit_z: 65535",
      f"  memory_bandwidth: {int(t.hbm_bytes_per_s)}",
      f"  l2_cache_size: {t.l2_bytes}",
      f"  clock_rate_ghz: {t.boost_clock_ghz}",
      f"  device_memory_size: {t.memory_bytes}",
      f"  cuda_compute_capability {{ major: {major} minor: {minor} }}",
      "  registers_per_core_limit: 65536",
      "  registers_per_block_limit: 65536",
      "}",
      'platform_name: "CUDA"',
      # The cuDNN the CUDA 12 plugin requires at least (nvidia-cudnn-cu12 9.10).
      "dnn_version_info { major: 9 minor: 10 patch: 2 }",
      f'device_description_str: "{t.description}"',
  ]) + "\n"


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
  return DEFAULT_PTXAS if os.access(DEFAULT_PTXAS, os.X_OK) else None


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


def require() -> None:
  """ConfigError naming probe.target unless a deviceless compile can run here."""
  reason = missing()
  if reason:
    raise ConfigError(f"config.probe.target: compiling for a GPU without one "
                      f"needs {reason}")


def topology(name: str, num_devices: int = 1):
  """Compile-only devices: `num_devices` GPUs called `name` on one host."""
  require()
  return topologies.get_topology_desc(
      platform="cuda", target_config=target_config(name),
      topology=f"1x1x{num_devices}")
