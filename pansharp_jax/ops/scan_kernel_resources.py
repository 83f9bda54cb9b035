"""The fused scan's kernels compiled for a target GPU, and what each uses.

`kernel_resources(target, d_state=...)` compiles the gradient of
`fused_scan` (its forward and backward kernels) for a GPU that need not be
here (ops/gpu_targets.py), or with `target=None` for this host's GPU, and
returns, per kernel, what ptxas reports
(registers per thread, spills) and the dynamic shared memory Mosaic GPU
allocates for it: ptxas' own "smem" line counts static shared memory only
(1 byte), so the figure comes from Mosaic's resource report. Both reports
are printed by the compiler (MOSAIC_GPU_DUMP_PTXAS, MOSAIC_GPU_DUMP_RESOURCES)
and read back from this process's stdout.
"""

import contextlib
import dataclasses
import os
import re
import sys
import tempfile

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

from pansharp_jax.ops import backend, gpu_targets, scan_kernel

_DUMPS = ("MOSAIC_GPU_DUMP_PTXAS", "MOSAIC_GPU_DUMP_RESOURCES")
_ENTRY = re.compile(r"Compiling entry function '(\w+?)_mosaic_gpu_kernel'")
_USED = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_SMEM = re.compile(r"Resources\(smem_scratch_bytes=(\d+)")


@dataclasses.dataclass
class KernelResources:
  kernel: str            # scan_forward | scan_backward
  d_state: int
  registers: int         # per thread
  spill_bytes: int       # stores + loads
  smem_bytes: int        # dynamic shared memory per block

  def within(self, target: gpu_targets.GpuTarget) -> bool:
    return (self.registers <= target.registers_per_thread and not self.spill_bytes
            and self.smem_bytes <= target.smem_per_block_optin)


@contextlib.contextmanager
def _captured_stdout(lines: list):
  """Collects what this process (Python and C++) writes to fd 1."""
  sys.stdout.flush()
  saved = os.dup(1)
  with tempfile.TemporaryFile(mode="w+") as sink:
    os.dup2(sink.fileno(), 1)
    try:
      yield
    finally:
      sys.stdout.flush()
      os.dup2(saved, 1)
      os.close(saved)
      sink.seek(0)
      lines.extend(sink.read().splitlines())


def _gradient(*, gate: bool):
  def loss(u, delta, A, B, C, D, delta_bias, h0, *z):
    y, last = scan_kernel.fused_scan(
        u, delta, A, B, C, D, z[0] if z else None, delta_bias, h0,
        delta_softplus=True, reverse=False)
    return y.astype(jnp.float32).sum() + last.sum()
  return jax.jit(jax.grad(loss, argnums=tuple(range(8 + gate))))


def kernel_resources(target: str | None = "h100", *, d_state: int = 16,
                     channels: int = scan_kernel.BLOCK, length: int = 1024,
                     dtype=jnp.bfloat16, gate: bool = False) -> list[KernelResources]:
  """[forward, backward] kernels of the fused scan compiled for `target`.

  The operands are those the ASSM block passes (models/assm.py): u, delta
  and B in the compute `dtype`, C in float32 (it carries the prompts), no
  gate z. Registers and shared memory do not depend on `length` or the
  batch (the grid), only on d_state, the dtypes and the gate. `target`
  None: compiled on this host's first device (a GPU); the caller turns the
  persistent compilation cache off there (a cached executable skips ptxas
  and its report).
  """
  devices = gpu_targets.topology(target).devices if target else jax.devices()[:1]
  mesh = jax.sharding.Mesh(devices, ("x",))
  replicated = NamedSharding(mesh, P())
  f32 = jnp.float32

  def arg(shape, dt=dtype):
    return jax.ShapeDtypeStruct(shape, dt, sharding=replicated)

  tokens = arg((1, length, channels))
  args = [tokens, tokens, arg((channels, d_state), f32),
          arg((1, length, d_state)), arg((1, length, d_state), f32),
          arg((channels,), f32), arg((channels,), f32),
          arg((1, channels, d_state), f32)] + [tokens] * gate
  lines = []
  before = {name: os.environ.get(name) for name in _DUMPS}
  os.environ.update({name: "1" for name in _DUMPS})
  try:
    with _captured_stdout(lines), backend.tracing_for("gpu"):
      _gradient(gate=gate).lower(*args).compile()
  finally:
    for name, value in before.items():
      os.environ.pop(name) if value is None else os.environ.update({name: value})
  return _parse(lines, d_state)


def _parse(lines: list[str], d_state: int) -> list[KernelResources]:
  """Mosaic's resource lines come at lowering, in trace order (forward,
  then backward); ptxas' reports at compile, each named by its kernel."""
  smem = [int(m.group(1)) for m in map(_SMEM.search, lines) if m]
  reports, name = {}, None
  for line in lines:
    if m := _ENTRY.search(line):
      name = m.group(1)
      reports[name] = {}
    elif name and (m := _SPILLS.search(line)):
      reports[name]["spills"] = int(m.group(1)) + int(m.group(2))
    elif name and (m := _USED.search(line)):
      reports[name]["registers"] = int(m.group(1))
  if len(smem) != len(scan_kernel.KERNELS) or set(reports) != set(scan_kernel.KERNELS):
    raise RuntimeError(
        f"expected the resource and ptxas reports of {scan_kernel.KERNELS}, "
        f"got {len(smem)} resource lines and ptxas reports of {sorted(reports)}")
  return [KernelResources(k, d_state, reports[k]["registers"],
                          reports[k]["spills"], s)
          for k, s in zip(scan_kernel.KERNELS, smem)]
