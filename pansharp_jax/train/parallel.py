"""Data parallelism: the device mesh, shardings, multi-host setup and batches.

The mesh has one axis, `data`. Batches are sharded on it and everything else
(params, optimizer state, EMA) is replicated. On several hosts each process
reads its own slice of the data and `shard_batch` stitches the slices into one
global array.
"""

import math
import os

import jax
from jax.experimental import multihost_utils
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from pansharp_jax.errors import ConfigError

# Arrays of a batch the train step reads; sources may carry more keys.
BATCH_KEYS = ("gt", "ms", "lms", "pan")

# Launchers that start one process per host (or per GPU) and what they set.
_PROCESS_COUNT_VARS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def initialize_distributed() -> None:
  """Calls `jax.distributed.initialize()` on multi-process launches only.

  A plain `python main.py` on one host must not try to reach a coordinator,
  so this looks for a launcher first: an explicit JAX_COORDINATOR_ADDRESS,
  or SLURM / Open MPI / PMI with more than one task.
  """
  counts = [int(os.environ.get(v, "1") or 1) for v in _PROCESS_COUNT_VARS]
  if "JAX_COORDINATOR_ADDRESS" in os.environ or max(counts) > 1:
    jax.distributed.initialize()


def _data_mesh(devices) -> jax.sharding.Mesh:
  # Auto axes: shardings are given explicitly at jit boundaries. The sizes
  # go by position: jax 0.11 renamed that parameter (axis_shapes -> axis_sizes).
  return jax.make_mesh((len(devices),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1D ('data',) mesh over all (or the first `num_devices`) devices."""
  return _data_mesh(jax.devices()[:num_devices or jax.device_count()])


def local_mesh(batch_size: int) -> jax.sharding.Mesh:
  """A ('data',) mesh over the most of this host's devices that split
  `batch_size` evenly (evaluation and prediction run per host)."""
  devices = jax.local_devices()
  return _data_mesh(devices[:math.gcd(batch_size, len(devices))])


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh) -> int:
  """Per-host batch size; the global batch must split evenly over devices."""
  devices = mesh.devices.size
  if global_batch <= 0 or global_batch % devices:
    raise ConfigError(
        f"config.batch_size: {global_batch} does not split evenly over the "
        f"{devices} devices of the mesh; use a positive multiple of {devices}")
  return global_batch // jax.process_count()


def shard_batch(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
  """Assembles each host's local batch into a global array sharded on 'data'."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(batch[k]))
          for k in BATCH_KEYS}


def abstract_batch(config, global_batch: int, mesh) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes of one sharded training batch, for compiling without data."""
  size, ratio = int(config.data.image_size), int(config.data.ratio)
  bands = int(config.data.num_bands)
  shapes = {"gt": (size, size, bands), "ms": (size // ratio, size // ratio, bands),
            "lms": (size, size, bands), "pan": (size, size, 1)}
  sharding = batch_sharding(mesh)
  return {k: jax.ShapeDtypeStruct((global_batch, *shapes[k]), np.float32,
                                  sharding=sharding) for k in BATCH_KEYS}


def any_process(flag: bool) -> bool:
  """True when `flag` is set on any host (every host must call this together)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))
