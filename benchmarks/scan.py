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

import functools
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from pansharp_jax import ops

_LENGTHS = flags.DEFINE_list("lengths", ["4096", "16384", "65536"],
                             "Sequence lengths (tokens).")
_METHODS = flags.DEFINE_list(
    "methods", ["sequential", "associative", "chunked"],
    "Scan methods to measure.")
_BATCH = flags.DEFINE_integer("batch", 1, "Batch size.")
_CHANNELS = flags.DEFINE_integer("channels", 192, "Channels (d_inner).")
_D_STATE = flags.DEFINE_integer("d_state", 16, "State size.")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 256, "Chunk for 'chunked'.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Dtype of the activations (u, delta, B, C, z).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed calls per executable.")
_MAX_RUN_GIB = flags.DEFINE_float(
    "max_run_gib", 4.0,
    "Run an executable only if XLA's temporaries are at most this many GiB.")

MIB = 2**20


def make_inputs(batch, length, channels, d_state, dtype):
  """Model-like inputs: Mamba's A and dt bias, random activations."""
  rng = np.random.default_rng(0)
  act = lambda *shape: jnp.asarray(rng.standard_normal(shape), dtype)
  return dict(
      u=act(batch, length, channels), delta=act(batch, length, channels),
      A=-jnp.exp(ops.a_log_init(None, (channels, d_state))),
      B=act(batch, length, d_state), C=act(batch, length, d_state),
      D=ops.d_init(None, (channels,)), z=act(batch, length, channels),
      delta_bias=ops.dt_bias_init()(jax.random.key(0), (channels,)))


def make_fns(method, chunk_size):
  """The jitted forward and forward + backward of one method."""
  scan = functools.partial(ops.selective_scan, method=method,
                           chunk_size=chunk_size)

  def loss(inputs):
    return jnp.sum(scan(**inputs).astype(jnp.float32))

  return (jax.jit(lambda inputs: scan(**inputs)), jax.jit(jax.grad(loss)))


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


def cpu_model():
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True,
                         check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return platform.processor() or "unknown"
  for line in out.splitlines():
    if line.startswith("Model name:"):
      return line.split(":", 1)[1].strip()
  return "unknown"


def print_header():
  device = jax.devices()[0]
  load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
  print("### Selective scan, per method\n")
  print(f"- machine: {cpu_model()} (lscpu), nproc {os.cpu_count()}; "
        f"load average at start {load}")
  print(f"- device: {device.platform} ({device.device_kind}); "
        f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
        f"python {platform.python_version()}")
  print(f"- shapes: batch {_BATCH.value}, channels {_CHANNELS.value}, "
        f"d_state {_D_STATE.value}, {_DTYPE.value}; chunk_size "
        f"{_CHUNK_SIZE.value}; D, z, delta_bias, softplus; backward w.r.t. "
        "every input")
  print("- command: `python -m benchmarks.scan " + " ".join(sys.argv[1:]) +
        "`\n")


def main(argv):
  del argv
  print_header()
  dtype = jnp.dtype(_DTYPE.value)
  max_run_bytes = _MAX_RUN_GIB.value * 2**30
  header = ["method", "L", "fwd ms", "fwd+bwd ms", "compile fwd s",
            "compile fwd+bwd s", "temp fwd MiB", "temp fwd+bwd MiB",
            "fwd+bwd temp / BLDN"]
  print("| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  for length in map(int, _LENGTHS.value):
    inputs = make_inputs(_BATCH.value, length, _CHANNELS.value,
                         _D_STATE.value, dtype)
    # One float32 (batch, length, channels, d_state) tensor, for scale.
    bldn = 4 * _BATCH.value * length * _CHANNELS.value * _D_STATE.value
    for method in _METHODS.value:
      row = [method, length]
      results = [measure(fn, inputs, _STEPS.value, max_run_bytes)
                 for fn in make_fns(method, _CHUNK_SIZE.value)]
      row += ["(not run)" if run_s is None else f"{run_s * 1e3:,.1f}"
              for _, _, run_s in results]
      row += [f"{compile_s:.2f}" for compile_s, _, _ in results]
      row += [f"{temp / MIB:,.1f}" for _, temp, _ in results]
      row.append(f"{results[1][1] / bldn:.2f}")
      print("| " + " | ".join(str(v) for v in row) + " |", flush=True)
  print()


if __name__ == "__main__":
  app.run(main)
