"""Selective scan benchmark: time, compile time and XLA memory per method.

For each method and length it compiles the forward pass and the forward +
backward pass (gradients w.r.t. every input) of `ops.selective_scan` at the
model's shapes (channels 192, d_state 16, with D, z, delta_bias, softplus),
reads XLA's memory analysis and times the compiled executables (median of
--steps calls after one warm-up, each ended by `block_until_ready`). An
executable whose temporaries exceed --max_run_gib is compiled and analysed
but not run. Prints Markdown for docs/benchmarks.md:

  python -m benchmarks.scan --lengths=4096,16384 --methods=sequential
"""

import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import common

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


if __name__ == "__main__":
  app.run(main)
