"""Device mesh and shardings for data parallelism (batch sharded, params replicated)."""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1D ('data',) mesh over all (or the first `num_devices`) devices."""
  n = num_devices or jax.device_count()
  # Auto axes: shardings are given explicitly at jit boundaries.
  return jax.make_mesh((n,), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n])


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh) -> int:
  """Per-host batch size; the global batch must split evenly over devices."""
  devices = mesh.devices.size
  if global_batch <= 0 or global_batch % devices:
    raise ValueError(f"config.batch_size={global_batch} must be a positive "
                     f"multiple of the {devices} devices in the mesh")
  return global_batch // jax.process_count()


def shard_batch(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
  """Assembles each host's local batch into a global array sharded on 'data'."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
