"""benchmarks/gpu_cost.py: a compiled program's flops with every loop's trip
count applied (XLA's own analysis counts a loop body once), on the CPU
compile of small loops whose flop count is known by hand."""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import gpu_cost
from pansharp_jax.ops import gpu_targets

N = 128
MATMUL = 2 * N**3


def _nested(outer, inner):
  def f(x):
    def body(c, _):
      def step(c2, _):
        return jnp.tanh(c2 @ x), None
      return jax.lax.scan(step, c, None, length=inner)[0], None
    return jax.lax.scan(body, x, None, length=outer)[0].sum()
  return jax.jit(f).lower(jnp.ones((N, N))).compile()


def test_nested_loops_count_every_trip():
  compiled = _nested(10, 3)
  cost = gpu_cost.step_cost(compiled)
  assert (cost.loops, cost.unknown_trips) == (2, 0)
  # 30 matmuls; the rest (tanh, the sum) is under 1% of it.
  np.testing.assert_allclose(cost.flops, 30 * MATMUL, rtol=1e-2)
  once = compiled.cost_analysis()
  once = once[0] if isinstance(once, list) else once
  np.testing.assert_allclose(once["flops"], MATMUL, rtol=1e-2)  # XLA's: one trip
  assert cost.xla_bytes > 30 * N * N * 4 and cost.kernel_bytes == 0


def test_a_loop_of_unknown_length_counts_once():
  def f(x):
    return jax.lax.while_loop(lambda c: c[0, 0] < 100.0, lambda c: c @ x, x)
  compiled = jax.jit(f).lower(jnp.ones((N, N))).compile()
  cost = gpu_cost.step_cost(compiled)
  assert (cost.loops, cost.unknown_trips) == (1, 1)
  np.testing.assert_allclose(cost.flops, MATMUL, rtol=1e-2)


def test_roofline_bound_is_the_slower_of_compute_and_memory():
  h100 = gpu_targets.TARGETS["h100"]
  compute_bound = gpu_cost.Cost(989.4e12, 1e9, 0, 0, 0)
  assert compute_bound.seconds_on(h100) == 1.0
  memory_bound = gpu_cost.Cost(1e9, 1e15, 3.35e12, 0, 0)  # XLA's bytes do not bound
  assert memory_bound.seconds_on(h100) == 1.0
