"""The fused scan's kernels compiled for an H100 on this host (deviceless):
ptxas must accept them, and the registers, spills and shared memory of each
must fit sm_90 (255 registers per thread, 227 KiB = 232,448 bytes of dynamic
shared memory per block). The figures are printed (`pytest -s`) for
docs/benchmarks.md; the state sizes are those of the model's layers (base
16-22 and large 20-26, padded to 16, 24 and 32).

Needs the CUDA plugin and ptxas (`pip install -e ".[gpu-compile]"`,
.ci/run's gpu-compile leg); skipped without them.
"""

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import pytest

from benchmarks import gpu_cost
from pansharp_jax.ops import backend, gpu_targets, pallas_launch, scan_kernel
from pansharp_jax.ops import scan_kernel_resources

_WHY = gpu_targets.missing() or pallas_launch.unavailable_reason()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"deviceless compile: {_WHY}")


@pytest.mark.parametrize("d_state", [16, 24, 32])
def test_fused_kernels_fit_an_h100(d_state):
  h100 = gpu_targets.TARGETS["h100"]
  kernels = scan_kernel_resources.kernel_resources("h100", d_state=d_state)
  for k in kernels:
    print(f"\n{k.kernel} d_state {k.d_state}: {k.registers} registers, "
          f"{k.spill_bytes} bytes spilled, {k.smem_bytes} bytes shared memory "
          f"(sm_90 limits {h100.registers_per_thread}, 0, {h100.smem_per_block_optin})")
  assert [k.kernel for k in kernels] == list(scan_kernel.KERNELS)
  assert all(k.within(h100) for k in kernels), kernels
  forward, backward = kernels
  # The backward kernel holds a sub-tile of states in shared memory as well.
  assert backward.smem_bytes > forward.smem_bytes > 0
  assert backward.registers >= forward.registers > 0



def test_step_cost_adds_the_kernels_own_bytes():
  """benchmarks/gpu_cost.py reads each kernel call's operand shapes from the
  compiled H100 program: forward + backward bytes = scan_kernel.hbm_bytes."""
  mesh = jax.sharding.Mesh(gpu_targets.topology("h100").devices, ("x",))
  rep = NamedSharding(mesh, P())
  b, length, channels, n = 2, 512, 192, 16
  arg = lambda shape, dt=jnp.bfloat16: jax.ShapeDtypeStruct(shape, dt, sharding=rep)
  f32 = jnp.float32

  def loss(u, delta, A, B, C):
    y, _ = scan_kernel.fused_scan(u, delta, A, B, C, None, None, None, None,
                                  delta_softplus=True, reverse=False)
    return y.astype(f32).sum()

  with backend.tracing_for("gpu"):
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 3, 4))).lower(
        arg((b, length, channels)), arg((b, length, channels)),
        arg((channels, n), f32), arg((b, length, n)), arg((b, length, n), f32)).compile()
  cost = gpu_cost.step_cost(compiled)
  assert cost.kernel_bytes == scan_kernel.hbm_bytes(b, length, channels, n, 2,
                                                    gate=False, backward=True)
  assert cost.xla_bytes > 0
