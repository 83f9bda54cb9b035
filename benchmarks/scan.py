"""Selective scan benchmark: time, compile time and XLA memory per method.

For each method and length it compiles the forward pass and the forward +
backward pass (gradients w.r.t. every input) of `ops.selective_scan` at the
model's shapes (channels 192, d_state 16, with D, z, delta_bias, softplus),
reads XLA's memory analysis and times the compiled executables (median of
--steps calls after one warm-up, each ended by `block_until_ready`). An
executable whose temporaries exceed --max_run_gib is compiled and analysed
but not run. Then, for the fused GPU kernel (method "fused", which needs a
GPU to run): its error in Pallas' interpreter against the float64
sequential scan (y, last state and every gradient, at a small shape) and
the bytes per token it reads and writes (computed from its layout,
ops/scan_kernel.hbm_bytes) beside the chunked method's (XLA's cost
analysis of the compiled program on this backend) and the op's own floor.
Prints Markdown for docs/benchmarks.md:

  python -m benchmarks.scan --lengths=4096,16384 --methods=sequential
  python -m benchmarks.scan --lengths=4096 --methods=chunked --dtype=bfloat16
"""

import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import common
from pansharp_jax import ops
from pansharp_jax.ops import pallas_launch, scan_kernel

_LENGTHS = flags.DEFINE_list("lengths", ["4096", "16384", "65536"],
                             "Sequence lengths (tokens).")
_METHODS = flags.DEFINE_list(
    "methods", ["sequential", "associative", "chunked"],
    "Scan methods to measure.")
_BATCH = flags.DEFINE_integer("batch", 1, "Batch size.")
_CHANNELS = flags.DEFINE_integer("channels", 192, "Channels (d_inner).")
_D_STATE = flags.DEFINE_integer("d_state", 16, "State size.")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 256, "Chunk for 'chunked'.")
# --dtype (common.DTYPE): of the activations (u, delta, B, C, z); float32
# when not given.
_STEPS = flags.DEFINE_integer("steps", 3, "Timed calls per executable.")
_FUSED = flags.DEFINE_bool(
    "fused", True, "Print the fused kernel's interpreter error and bytes.")
_MAX_RUN_GIB = flags.DEFINE_float(
    "max_run_gib", 4.0,
    "Run an executable only if XLA's temporaries are at most this many GiB.")

MIB = 2**20


def measure(fn, inputs, steps, max_run_bytes):
  """Compile seconds, temp bytes and median run seconds (None if skipped)."""
  start = time.perf_counter()
  compiled = fn.lower(inputs).compile()
  compile_s = time.perf_counter() - start
  temp = compiled.memory_analysis().temp_size_in_bytes
  if temp > max_run_bytes:
    return compile_s, temp, None
  jax.block_until_ready(compiled(inputs))  # warm-up
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(compiled(inputs))
    times.append(time.perf_counter() - start)
  return compile_s, temp, statistics.median(times)


def fused_errors():
  """Max |fused - float64 sequential| / max |reference| per output and
  gradient, the fused kernel in the interpreter (float32 inputs)."""
  shapes = (2, 300, 20, 16)  # batch, length, channels, d_state: 19 tiles
  inputs = dict(common.scan_inputs(*shapes), h0=jax.random.normal(
      jax.random.key(1), (shapes[0], shapes[2], shapes[3])))
  weights = jax.random.normal(jax.random.key(2), inputs["u"].shape)

  def value_and_grads(arrays, method, **kw):
    def loss(arrays):
      y, state = ops.selective_scan(**arrays, reverse=True, method=method,
                                    return_last_state=True, **kw)
      return jnp.sum(y * weights.astype(y.dtype)) + jnp.sum(state), (y, state)
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(arrays)

  (_, (y, state)), grads = value_and_grads(inputs, "fused", interpret=True)
  with jax.enable_x64(True):
    wide = {k: jnp.asarray(v, jnp.float64) for k, v in inputs.items()}
    (_, (y64, state64)), grads64 = value_and_grads(wide, "sequential")
    rel = lambda a, b: float(jnp.abs(a - b).max() / jnp.abs(b).max())
    errors = {"y": rel(y, y64), "last state": rel(state, state64)}
    errors.update({f"d{k}": rel(grads[k], grads64[k]) for k in grads})
  return shapes, errors


def bytes_per_token(length, dtype):
  """[[method, fwd bytes/token, fwd+bwd bytes/token], ...] at the flags'
  shapes: the fused kernel's (computed), chunked (XLA), the floor."""
  batch, channels, d_state = _BATCH.value, _CHANNELS.value, _D_STATE.value
  tokens = batch * length
  itemsize = jnp.dtype(dtype).itemsize
  inputs = common.scan_inputs(batch, length, channels, d_state, dtype)
  chunked = [fn.lower(inputs).compile().cost_analysis() for fn in
             common.scan_fns("chunked", _CHUNK_SIZE.value)]
  chunked = [(c[0] if isinstance(c, list) else c)["bytes accessed"]
             for c in chunked]
  fused = [scan_kernel.hbm_bytes(batch, length, channels, d_state, itemsize,
                                 backward=b) for b in (False, True)]
  floor = [common.scan_io_bytes(batch, length, channels, d_state, itemsize,
                                gate=True, backward=b) for b in (False, True)]
  return [[name, *(f"{b / tokens:,.0f}" for b in pair)] for name, pair in (
      ("fused (computed)", fused), (f"chunked {_CHUNK_SIZE.value} (XLA)",
                                    chunked), ("floor: own I/O", floor))]


def print_fused(dtype):
  shapes, errors = fused_errors()
  common.print_header("Fused scan kernel in the interpreter vs float64", (
      f"batch {shapes[0]}, length {shapes[1]}, channels {shapes[2]}, d_state "
      f"{shapes[3]}, float32 inputs, reversed, D, z, delta_bias, h0, "
      "softplus; max |error| / max |reference|",))
  common.print_table(["output", "relative error"],
                     [[k, f"{v:.1e}"] for k, v in errors.items()])
  length = int(_LENGTHS.value[0])
  common.print_header("Bytes per token read and written", (
      f"batch {_BATCH.value}, length {length}, channels {_CHANNELS.value}, "
      f"d_state {_D_STATE.value}, {dtype}; a token is one (batch, position)",))
  common.print_table(["path", "fwd bytes/token", "fwd+bwd bytes/token"],
                     bytes_per_token(length, dtype))


def main(argv):
  del argv
  dtype = jnp.dtype(common.DTYPE.value or "float32")
  max_run_bytes = _MAX_RUN_GIB.value * 2**30
  header = ["method", "L", "fwd ms", "fwd+bwd ms", "compile fwd s",
            "compile fwd+bwd s", "temp fwd MiB", "temp fwd+bwd MiB",
            "fwd+bwd temp / BLDN"]
  rows = []
  for length in map(int, _LENGTHS.value):
    inputs = common.scan_inputs(_BATCH.value, length, _CHANNELS.value,
                                _D_STATE.value, dtype)
    # One float32 (batch, length, channels, d_state) tensor, for scale.
    bldn = 4 * _BATCH.value * length * _CHANNELS.value * _D_STATE.value
    for method in _METHODS.value:
      row = [method, length]
      results = [measure(fn, inputs, _STEPS.value, max_run_bytes)
                 for fn in common.scan_fns(method, _CHUNK_SIZE.value)]
      row += ["(not run)" if run_s is None else f"{run_s * 1e3:,.1f}"
              for _, _, run_s in results]
      row += [f"{compile_s:.2f}" for compile_s, _, _ in results]
      row += [f"{temp / MIB:,.1f}" for _, temp, _ in results]
      row.append(f"{results[1][1] / bldn:.2f}")
      rows.append(row)
      print(" | ".join(str(v) for v in row), file=sys.stderr, flush=True)
  common.print_header("Selective scan, per method", (
      f"shapes: batch {_BATCH.value}, channels {_CHANNELS.value}, d_state "
      f"{_D_STATE.value}, {dtype}; chunk_size {_CHUNK_SIZE.value}; D, z, "
      "delta_bias, softplus; backward w.r.t. every input",))
  common.print_table(header, rows)
  if _FUSED.value:
    reason = pallas_launch.unavailable_reason()
    if reason:
      print(f"\nfused kernel: skipped, {reason}")
    else:
      print_fused(dtype)


if __name__ == "__main__":
  app.run(main)
