"""Shared helpers for the benchmark scripts: configs, timing, compilation, tables.

Timing is the median of several calls after warm-up, each ended by
`jax.block_until_ready`. Compilation is timed separately (lower + compile)
and read for XLA's memory and cost analysis, so every figure comes from the
executable that is timed. The scripts run from the repository root as
`python -m benchmarks.<name>` and print Markdown for docs/benchmarks.md.
"""

import collections
import dataclasses
import functools
import glob
import gzip
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

from absl import flags
import flax
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from configs import common as configs_common
from pansharp_jax import ops
from pansharp_jax.train import builder, parallel

MIB = 2**20
_LOAD_AT_START = os.getloadavg()  # before this process adds its own load
_INPUTS = ("ms", "pan", "lms")

# Model switches shared by every script, so a GPU run can pick its fast paths.
SCAN_METHOD = flags.DEFINE_enum(
    "scan_method", None, ["auto", "associative", "sequential", "chunked"],
    "Sets config.model.scan_method (default: the config's).")
ATTN_IMPL = flags.DEFINE_enum(
    "attn_impl", None, ["auto", "cudnn", "chunked", "xla"],
    "Sets config.model.attn_impl (default: the config's).")
DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"],
                          "Sets config.model.dtype (default: the config's).")
SCAN_LAYERS = flags.DEFINE_bool(
    "scan_layers", None,
    "Sets config.model.scan_layers (default: the config's, on; XLA:CPU runs "
    "convolutions inside loops slowly, so CPU figures set it off).")
REMAT = flags.DEFINE_bool("remat", None,
                          "Sets config.model.remat (default: the config's).")
DEPTH = flags.DEFINE_integer(
    "depth", None,
    "Sets config.model.depth, ASSM blocks per layer (default: the size's; "
    "1 builds the model as the original does).")
DIRECTIONS = flags.DEFINE_enum(
    "directions", None, ["1", "2", "4"],
    "Sets config.model.directions (default: the config's).")


def make_config(size: str, image_size: int, batch_size: int, num_bands: int,
                base=None):
  """The base config at one model size, crop size and global batch size,
  with the model switches from the command line applied.

  `base` is a config to start from instead of the shared defaults (e.g. one
  of configs/*.py's get_config(), so that main.py with that config file
  compiles the same train step); it is changed in place.
  """
  config = configs_common.get_base_config() if base is None else base
  config.model.size = size
  config.data.image_size = image_size
  config.data.num_bands = num_bands
  config.batch_size = batch_size
  switches = {"model.scan_method": SCAN_METHOD.value,
               "model.attn_impl": ATTN_IMPL.value,
               "model.dtype": DTYPE.value,
               "model.scan_layers": SCAN_LAYERS.value,
               "model.remat": REMAT.value,
               "model.directions": DIRECTIONS.value and int(DIRECTIONS.value),
               "model.depth": DEPTH.value}
  try:
    config.update_from_flattened_dict(
        {k: v for k, v in switches.items() if v is not None})
  except KeyError as e:
    raise ValueError(f"this config has no such field: {e}") from e
  return config


def random_batch(config, mesh, seed: int = 0) -> dict[str, jax.Array]:
  """A training batch of uniform noise with the config's shapes, sharded."""
  rng = np.random.default_rng(seed)
  b, s = int(config.batch_size), int(config.data.image_size)
  c, r = int(config.data.num_bands), int(config.data.ratio)
  shapes = {"gt": (b, s, s, c), "ms": (b, s // r, s // r, c),
            "lms": (b, s, s, c), "pan": (b, s, s, 1)}
  return parallel.shard_batch(
      {k: rng.random(v, dtype=np.float32) for k, v in shapes.items()}, mesh)


def num_params(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@dataclasses.dataclass
class Compiled:
  """A compiled executable with its compile time and XLA's analyses."""
  executable: object
  compile_s: float
  argument_bytes: int
  output_bytes: int
  temp_bytes: int
  alias_bytes: int
  flops: float

  @property
  def peak_bytes(self) -> int:
    """XLA's per-device estimate: arguments + outputs + temporaries - aliased."""
    return (self.argument_bytes + self.output_bytes + self.temp_bytes -
            self.alias_bytes)


def compile_fn(jitted, *args) -> Compiled:
  """Lowers and compiles `jitted` for `args`; times it and reads the analyses."""
  start = time.perf_counter()
  executable = jitted.lower(*args).compile()
  return analysed(executable, time.perf_counter() - start)


def analysed(executable, compile_s: float) -> Compiled:
  """A compiled executable (e.g. the memory probe's) with XLA's analyses."""
  memory = executable.memory_analysis()
  cost = executable.cost_analysis() or {}
  if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
    cost = cost[0] if cost else {}
  return Compiled(
      executable=executable, compile_s=compile_s,
      argument_bytes=memory.argument_size_in_bytes,
      output_bytes=memory.output_size_in_bytes,
      temp_bytes=memory.temp_size_in_bytes,
      alias_bytes=memory.alias_size_in_bytes,
      flops=float(cost.get("flops", float("nan"))))


def time_calls(fn, carry, *, warmup: int, steps: int):
  """Calls `carry = fn(carry)` warmup + steps times, blocking after each.

  Returns the median seconds of the timed calls, all timed calls, and the
  last carry (so a donated train state is threaded through).
  """
  for _ in range(warmup):
    carry = jax.block_until_ready(fn(carry))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    carry = jax.block_until_ready(fn(carry))
    times.append(time.perf_counter() - start)
  return statistics.median(times), times, carry


class Bench:
  """One model config on one mesh: its state, train step and eval forward,
  built as pansharp_jax.train.loop builds them."""

  def __init__(self, config, mesh):
    self.config = config
    self.model, optimizer, _, self.state = builder.build(config, mesh)
    self.train_step = builder.jit_train_step(self.model, optimizer, config, mesh)
    self.predict = builder.jit_predict(self.model)
    self.batch = random_batch(config, mesh)
    self.num_params = num_params(self.state.params)

  def compile_train(self) -> Compiled:
    return compile_fn(self.train_step, self.state, self.batch)

  def compile_predict(self) -> Compiled:
    return compile_fn(self.predict, self._variables(), self._inputs())

  def time_train(self, compiled: Compiled, *, warmup: int, steps: int):
    """Median train-step seconds, all timed steps and the last metrics.

    The state is donated to each step and replaced by the one it returns.
    """
    def step(carry):
      return compiled.executable(carry[0], self.batch)
    median, times, (self.state, metrics) = time_calls(
        step, (self.state, None), warmup=warmup, steps=steps)
    return median, times, jax.device_get(metrics)

  def time_predict(self, compiled: Compiled, *, warmup: int, steps: int):
    """Median eval-forward seconds and all timed calls."""
    variables, inputs = self._variables(), self._inputs()
    median, times, _ = time_calls(
        lambda _: compiled.executable(variables, inputs), None,
        warmup=warmup, steps=steps)
    return median, times

  def _variables(self):
    return {"params": self.state.ema_params, **self.state.model_state}

  def _inputs(self):
    return {k: self.batch[k] for k in _INPUTS}


# HLO instructions whose trace events enclose other instructions' events.
_CONTAINER_OPS = ("while", "conditional", "call")
_HLO_LINE = re.compile(
    r"^\s*(?:ROOT )?%?([\w.-]+) = .*? (\w+)\(.*?op_name=\"([^\"]*)\"")


_JAX_SCOPES = ("while", "body", "cond", "checkpoint", "remat",
               "rematted_computation", "closed_call", "scan")


def _innermost(scope: str) -> str:
  """'transpose(jvp(Model))' -> 'Model'."""
  while "(" in scope:
    scope = scope[scope.index("(") + 1:scope.rindex(")")]
  return scope


def _origin(op_name: str):
  """(module path, primitive, backward) of an HLO op's op_name metadata.

  'jit(step)/transpose(jvp(Model))/Block_0/while/body/Dense_1/dot_general'
  gives (['Model', 'Block_0', 'Dense_1'], 'dot_general', True). Ops outside
  the Flax model get the path ['loss'] (differentiated) or ['update']
  (optimizer, EMA, metrics).
  """
  *scopes, primitive = op_name.split(";")[0].split("/")[1:] or [""]
  backward = "transpose(" in op_name
  root = _innermost(scopes[0]) if scopes else ""
  if not root[:1].isupper():
    return ["loss" if "jvp(" in op_name else "update"], primitive, backward
  path = [root] + [p for p in scopes[1:] if not p.startswith("jit(") and
                   _innermost(p) and _innermost(p) not in _JAX_SCOPES]
  return path, primitive, backward


def by_module(depth: int):
  """Profile grouping: the module path, `depth` levels from the model."""
  def key(op_name):
    path, _, backward = _origin(op_name)
    return "/".join(path[:depth]) + (" (bwd)" if backward else "")
  return key


def by_layer_kind(op_name: str) -> str:
  """Profile grouping: the innermost module's kind and the XLA primitive,
  e.g. 'DepthwiseConv: conv_general_dilated (bwd)', summed over the model."""
  path, primitive, backward = _origin(op_name)
  return (f"{re.sub(r'_[0-9]+$', '', path[-1])}: {primitive}" +
          (" (bwd)" if backward else ""))


def profile_ops(trace_dir: str, hlo_text: str, calls: int) -> dict:
  """XLA op time per call from a jax.profiler trace: {hlo op: (op_name, ms)}.

  Reads the newest perfetto trace under `trace_dir` and matches its op events
  (`args.hlo_op`) to the compiled HLO's op_name metadata. Loop and call ops
  are left out: the ops they run are counted themselves. Ops may run
  concurrently on several threads, so the sum can exceed the step time.
  """
  trace = max(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
                        recursive=True), key=os.path.getmtime)
  with gzip.open(trace) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  names = {}
  for line in hlo_text.splitlines():
    match = _HLO_LINE.match(line)
    if match and match.group(2) not in _CONTAINER_OPS:
      names[match.group(1)] = match.group(3)
  ms = collections.Counter()
  for event in events:
    op = event.get("args", {}).get("hlo_op")
    if event.get("ph") == "X" and op in names:
      ms[op] += event["dur"] / 1e3 / calls  # us -> ms per call
  return {op: (names[op], t) for op, t in ms.items()}


def group_ops(ops: dict, key) -> list[tuple[str, float, float]]:
  """(group, ms per call, share of all op time), slowest first."""
  groups = collections.Counter()
  for op_name, ms in ops.values():
    groups[key(op_name)] += ms
  total = sum(groups.values()) or 1.0
  return [(name, ms, ms / total) for name, ms in groups.most_common()]


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True,
                         check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return platform.processor() or "unknown"
  for line in out.splitlines():
    if line.startswith("Model name:"):
      return line.split(":", 1)[1].strip()
  return "unknown"


def command_line() -> str:
  """The command that reproduces this run, from the repository root."""
  module = os.path.splitext(os.path.relpath(sys.argv[0]))[0]
  return " ".join(["python -m", module.replace(os.sep, ".")] + sys.argv[1:])


def model_switches(config) -> str:
  """The model fields the command-line switches set, as they ran."""
  model = config.model
  return ", ".join(f"{k}={model[k]}" for k in (
      "depth", "scan_method", "attn_impl", "scan_layers", "remat",
      "directions", "dtype"))


def print_header(title: str, extra_lines: tuple[str, ...] = ()):
  """Prints the title, machine, load, versions and the reproducing command.

  Call it after the measurements: it reports the load average (1, 5, 15 min)
  when this process started and when it finished.
  """
  device = jax.devices()[0]
  start, end = (", ".join(f"{v:.2f}" for v in load)
                for load in (_LOAD_AT_START, os.getloadavg()))
  print(f"### {title}\n")
  print(f"- machine: {cpu_model()} (lscpu), nproc {os.cpu_count()}; "
        f"load average {start} at start, {end} at end")
  print(f"- devices: {jax.device_count()} x {device.platform} "
        f"({device.device_kind})")
  print(f"- versions: python {platform.python_version()}, jax {jax.__version__}, "
        f"jaxlib {jaxlib.__version__}, flax {flax.__version__}")
  for line in extra_lines:
    print(f"- {line}")
  print(f"- command: `{command_line()}`\n")


def print_table(header: list[str], rows: list[list]):
  """Prints a Markdown table."""
  print("| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  for row in rows:
    print("| " + " | ".join(str(v) for v in row) + " |")
  print()


def mib(num_bytes: float) -> str:
  return f"{num_bytes / MIB:,.1f}"


# ---- selective scan inputs and traffic ----


def scan_inputs(batch: int, length: int, channels: int, d_state: int,
                dtype=jnp.float32) -> dict[str, jax.Array]:
  """Model-like selective-scan inputs: Mamba's A and dt bias, random
  activations (u, delta, B, C, z) in `dtype`."""
  rng = np.random.default_rng(0)
  act = lambda *shape: jnp.asarray(rng.standard_normal(shape), dtype)
  return dict(
      u=act(batch, length, channels), delta=act(batch, length, channels),
      A=-jnp.exp(ops.a_log_init(None, (channels, d_state))),
      B=act(batch, length, d_state), C=act(batch, length, d_state),
      D=ops.d_init(None, (channels,)), z=act(batch, length, channels),
      delta_bias=ops.dt_bias_init()(jax.random.key(0), (channels,)))


def scan_fns(method: str, chunk_size: int):
  """The jitted forward and forward + backward (gradients w.r.t. every
  input) of one selective-scan method, each taking the inputs dict."""
  scan = functools.partial(ops.selective_scan, method=method,
                           chunk_size=chunk_size)

  def loss(inputs):
    return jnp.sum(scan(**inputs).astype(jnp.float32))

  return jax.jit(lambda inputs: scan(**inputs)), jax.jit(jax.grad(loss))


def scan_io_bytes(batch: int, length: int, channels: int, d_state: int,
                  itemsize: int = 4, *, gate: bool = False,
                  backward: bool = False) -> int:
  """Bytes a selective scan must move at the least: its own reads and writes.

  Forward: read u, delta (and z with `gate`), B, C, A, D and delta_bias once,
  write y once. Forward + backward adds the backward pass's reads (every
  input again, and dy) and writes (one gradient per input). Everything the
  scan keeps in between (states, chunk boundaries) is left out, so this is
  the floor any implementation pays; time / (bytes / bandwidth) says how far
  one is from it.
  """
  tokens = batch * length
  inputs = itemsize * (tokens * channels * (3 if gate else 2) +  # u, delta, z
                       tokens * d_state * 2 +                    # B, C
                       channels * d_state + 2 * channels)        # A, D, bias
  y = itemsize * tokens * channels
  if not backward:
    return inputs + y
  return (inputs + y) + (inputs + y) + inputs  # fwd; bwd reads; bwd writes


# ---- device memory bandwidth ----

# Peak DRAM bandwidth (bytes/s) from the vendors' data sheets. A device kind
# matches an entry when it contains all of the entry's words (split on
# anything but letters and digits); the first match wins, so the specific
# variants come before the general name. None: the name does not tell the
# memory apart (measure instead).
GPU_BANDWIDTH = (
    (("gh200",), None),                 # HBM3 4.0 or HBM3e 4.9 TB/s
    (("b200",), 8.0e12),
    (("h200",), 4.8e12),
    (("h100", "pcie"), 2.0e12),
    (("h100", "nvl"), 3.9e12),
    (("h100",), 3.35e12),               # SXM5, HBM3
    (("a100", "80gb", "pcie"), 1.935e12),
    (("a100", "80gb"), 2.039e12),       # SXM4
    (("a100",), 1.555e12),              # 40 GB
    (("l40s",), 864e9),
    (("l40",), 864e9),
    (("l4",), 300e9),
    (("a10g",), 600e9),
    (("a10",), 600e9),
    (("v100",), 900e9),
    (("t4",), 320e9),
)


def known_bandwidth(device_kind: str):
  """(bytes/s, the table entry's words) for a device kind, or (None, None)."""
  words = set(re.split(r"[^a-z0-9]+", device_kind.lower()))
  for entry, bandwidth in GPU_BANDWIDTH:
    if words.issuperset(entry):
      return bandwidth, " ".join(entry)
  return None, None


def measure_bandwidth(nbytes: int = 2**30, steps: int = 5) -> float:
  """Bytes/s of a device copy (`x + 1` over `nbytes` of float32: each call
  reads and writes `nbytes`), median of `steps` calls."""
  x = jnp.zeros((nbytes // 4,), jnp.float32)
  add = jax.jit(lambda x: x + 1)
  median, _, _ = time_calls(lambda _: add(x), None, warmup=1, steps=steps)
  return 2 * nbytes / median
