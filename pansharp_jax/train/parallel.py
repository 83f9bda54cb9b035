"""Data parallelism: the device mesh, shardings, multi-host setup and batches.

The mesh has one axis, `data`. Batches are sharded on it and everything else
(params, optimizer state, EMA) is replicated. On several hosts each process
reads its own rows of each global batch and `shard_batch` stitches them into
one global array; evaluation runs on each host's own devices (`local_mesh`,
`to_local`). docs/multihost.md shows the launches.
"""

import math
import os
import socket
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from pansharp_jax.errors import ConfigError, LaunchError

# Arrays of a batch the train step reads; sources may carry more keys.
BATCH_KEYS = ("gt", "ms", "lms", "pan")

# Launchers that start one process per host (or per GPU) and what they set.
_PROCESS_COUNT_VARS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
# What a task of a SLURM job step has (JAX's SLURM detection reads them); an
# allocation shell (`salloc -n 4`, no `srun`) has SLURM_NTASKS but not these.
_SLURM_STEP_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID")


def _int_var(environ, name: str, low: int) -> int | None:
  value = environ.get(name)
  if value is None or value == "":
    return None
  try:
    number = int(value)
  except ValueError:
    number = low - 1
  if number < low:
    raise LaunchError(f"{name}: must be an integer >= {low}, got {value!r}")
  return number


def launch_arguments(environ) -> dict | None:
  """`jax.distributed.initialize` arguments for this launch; None for one process.

  A plain `python main.py` on one host must not try to reach a coordinator,
  so a multi-process launch is recognised first: JAX_COORDINATOR_ADDRESS or
  JAX_NUM_PROCESSES > 1 (a plain launch; JAX_PROCESS_ID gives the rank), or
  SLURM / Open MPI / PMI with more than one task, or a Kubernetes indexed
  job. What the environment leaves unset JAX's cluster detection fills in.
  """
  address = environ.get("JAX_COORDINATOR_ADDRESS") or None
  count = _int_var(environ, "JAX_NUM_PROCESSES", 1)
  index = _int_var(environ, "JAX_PROCESS_ID", 0)
  if count is not None and index is not None and index >= count:
    raise LaunchError(f"JAX_PROCESS_ID: {index} is not below JAX_NUM_PROCESSES={count}")
  counts = {v: _int_var(environ, v, 1) or 1 for v in _PROCESS_COUNT_VARS}
  if allocation_without_step(environ):
    counts["SLURM_NTASKS"] = 1
  tasks = max(counts.values())
  kubernetes = "KUBERNETES_SERVICE_HOST" in environ and "JOB_COMPLETION_INDEX" in environ
  if count == 1 or not (address or (count or 1) > 1 or tasks > 1 or kubernetes):
    return None
  return {"coordinator_address": address, "num_processes": count,
          "process_id": index}


def allocation_without_step(environ) -> bool:
  """Inside a SLURM allocation of several tasks but not in a task of a job
  step (`salloc -n 4` then a plain `python main.py`): one process."""
  tasks = _int_var(environ, "SLURM_NTASKS", 1) or 1
  return tasks > 1 and not all(v in environ for v in _SLURM_STEP_VARS)


def initialize_distributed(config, environ=os.environ) -> None:
  """Joins the processes of a multi-process launch (`jax.distributed`).

  The timeouts come from `config.distributed`: how long to wait for the
  coordinator and every peer, how long a silent peer is waited for before
  the others stop, and how long processes wait for each other at exit. A
  launch that cannot form is one LaunchError line.
  """
  arguments = launch_arguments(environ)
  if arguments is None:
    if allocation_without_step(environ):
      logging.warning("SLURM_NTASKS=%s but this is not a task of a job step (no srun): "
                      "running as one process; launch with srun for %s processes",
                      environ["SLURM_NTASKS"], environ["SLURM_NTASKS"])
    return
  timeouts = config.distributed
  wait = int(timeouts.initialization_timeout)
  if arguments["coordinator_address"] and arguments["process_id"]:
    _wait_for_coordinator(arguments["coordinator_address"], wait)
  try:
    jax.distributed.initialize(
        **arguments, initialization_timeout=wait,
        heartbeat_timeout_seconds=int(timeouts.heartbeat_timeout),
        shutdown_timeout_seconds=int(timeouts.shutdown_timeout))
  except (ValueError, TypeError, RuntimeError) as e:  # JaxRuntimeError is one
    where = ", ".join(f"{k}={v}" for k, v in arguments.items() if v is not None)
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise LaunchError(
        f"jax.distributed: the processes did not connect ({where or 'cluster detection'}; "
        f"config.distributed.initialization_timeout={wait} s): {detail}") from None
  if jax.default_backend() == "cpu" and jax.config.jax_enable_compilation_cache:
    # jax 0.12.1: a program with gloo collectives that several CPU processes
    # load from the persistent compilation cache waits forever in its first
    # collective (a resumed run on two processes hung; compiled afresh it
    # runs). CPU programs compile in seconds, so the cache is left out.
    logging.info("Persistent compilation cache off: %d CPU processes",
                 jax.process_count())
    jax.config.update("jax_enable_compilation_cache", False)


def _wait_for_coordinator(address: str, seconds: int) -> None:
  """Waits until `address` (host:port) accepts connections.

  JAX's client aborts the process (a C++ fatal error and stack dump) when
  it cannot reach the coordinator; checked first, it is one LaunchError line.
  """
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + seconds
  while True:
    try:
      socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
      return
    except (OSError, ValueError) as e:
      if time.monotonic() >= deadline:
        raise LaunchError(
            f"JAX_COORDINATOR_ADDRESS: {address} did not answer within "
            f"config.distributed.initialization_timeout={seconds} s ({e}); "
            "start process 0 there, or fix the address") from None
      time.sleep(0.5)


def data_mesh(devices) -> jax.sharding.Mesh:
  # Auto axes: shardings are given explicitly at jit boundaries. The sizes
  # go by position: jax 0.11 renamed that parameter (axis_shapes -> axis_sizes).
  return jax.make_mesh((len(devices),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1D ('data',) mesh over all (or the first `num_devices`) devices."""
  return data_mesh(jax.devices()[:num_devices or jax.device_count()])


def local_mesh(batch_size: int) -> jax.sharding.Mesh:
  """A ('data',) mesh over the most of this host's devices that split
  `batch_size` evenly (evaluation and prediction run per host)."""
  devices = jax.local_devices()
  return data_mesh(devices[:math.gcd(batch_size, len(devices))])


def to_local(tree, mesh):
  """`tree`'s replicated arrays (params) replicated over `mesh`, a mesh of
  this host's devices. On several hosts an array of the global mesh cannot
  be moved (no cross-host transfers); its replica on this host is used."""
  def local(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if not x.is_fully_replicated:
        raise ValueError(f"to_local: a {x.sharding} array is not replicated")
      return x.addressable_data(0)
    return x
  return jax.device_put(jax.tree.map(local, tree), replicated(mesh))


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh) -> None:
  """The global batch must split evenly over the mesh's devices."""
  devices = mesh.devices.size
  if global_batch <= 0 or global_batch % devices:
    raise ConfigError(
        f"config.batch_size: {global_batch} does not split evenly over the "
        f"{devices} devices of the mesh; use a positive multiple of {devices}")


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


def same_on_all_processes(value: float) -> float:
  """Process 0's `value` on every host (every host must call this together),
  as float32 on any process count (the broadcast's dtype without x64), so a
  near-tie decides the same on 1 and N processes."""
  value = np.float32(value)
  if jax.process_count() > 1:
    value = multihost_utils.broadcast_one_to_all(value)
  return float(value)
