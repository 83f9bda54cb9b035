"""Train-step and eval-forward throughput at several model and image sizes.

For each model size and image size: compile time, XLA memory analysis
(per device), FLOPs, and the median step time and images/s of several timed
steps after warm-up. Prints a Markdown table for docs/benchmarks.md.

  python -m benchmarks.train_step                                   # full sweep (GPU)
  python -m benchmarks.train_step --sizes=tiny,base --image_sizes=64,128 \
      --batch_size=2 --steps=3                                      # a 2-core CPU
  python -m benchmarks.train_step --sizes=large --image_sizes=512 --memory_only
"""

import os
import sys

from absl import app, flags
import jax

from benchmarks import common
from pansharp_jax.train import parallel

_SIZES = flags.DEFINE_list("sizes", ["tiny", "base", "large"], "Model sizes.")
_IMAGE_SIZES = flags.DEFINE_list("image_sizes", ["64", "128", "256", "512"],
                                 "PAN/GT crop sizes in pixels.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 8, "Global batch size (a multiple of the device count).")
_NUM_BANDS = flags.DEFINE_integer("num_bands", 4, "MS bands.")
_MODES = flags.DEFINE_list("modes", ["train", "eval"],
                           "train (step with update) and/or eval (forward).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls after compiling.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed calls; the median is reported.")
_MEMORY_ONLY = flags.DEFINE_bool(
    "memory_only", False, "Compile and report memory/FLOPs only; no timing.")
_PROFILE_DIR = flags.DEFINE_string(
    "profile_dir", None,
    "Trace each timed run with jax.profiler under this folder and print where "
    "the time goes, by Flax module.")
_PROFILE_DEPTH = flags.DEFINE_integer(
    "profile_depth", 4, "Module path levels to group the profile by.")
_PROFILE_TOP = flags.DEFINE_integer("profile_top", 12,
                                    "Profile rows to print per run.")

_HEADER = ["model", "params", "image", "batch", "mode", "compile s",
           "step ms", "images/s", "args MiB", "temp MiB", "peak MiB",
           "GFLOP/step"]


def _row(bench, mode, compiled, median_s):
  config = bench.config
  batch = int(config.batch_size)
  timed = median_s is not None
  return [config.model.size, f"{bench.num_params / 1e6:.2f}M",
          config.data.image_size, batch, mode, f"{compiled.compile_s:.1f}",
          f"{median_s * 1e3:,.1f}" if timed else "-",
          f"{batch / median_s:,.2f}" if timed else "-",
          common.mib(compiled.argument_bytes), common.mib(compiled.temp_bytes),
          common.mib(compiled.peak_bytes), f"{compiled.flops / 1e9:,.1f}"]


def _measure(bench, mode, profiles):
  """Compiles and (unless --memory_only) times one mode; returns a table row.

  With --profile_dir, also appends (name, profile_ops) to `profiles`.
  """
  if mode == "eval":
    compiled = bench.compile_predict()
    run = bench.time_predict
  else:
    compiled = bench.compile_train()
    run = bench.time_train
  if _MEMORY_ONLY.value:
    return _row(bench, mode, compiled, None)
  name = f"{bench.config.model.size}_{bench.config.data.image_size}_{mode}"
  if not _PROFILE_DIR.value:
    median_s = run(compiled, warmup=_WARMUP.value, steps=_STEPS.value)[0]
    return _row(bench, mode, compiled, median_s)
  trace_dir = os.path.join(_PROFILE_DIR.value, name)
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    median_s = run(compiled, warmup=_WARMUP.value, steps=_STEPS.value)[0]
  profiles.append((name, common.profile_ops(
      trace_dir, compiled.executable.as_text(), _WARMUP.value + _STEPS.value)))
  return _row(bench, mode, compiled, median_s)


def _print_profiles(profiles):
  """Where each profiled run spends its XLA op time: by module and by kind."""
  top = _PROFILE_TOP.value
  for name, ops in profiles:
    print(f"Profile {name} (trace under {_PROFILE_DIR.value}/{name}): XLA op "
          "time per call; ops run concurrently, so shares are of op time.\n")
    for title, key in (("module", common.by_module(_PROFILE_DEPTH.value)),
                       ("layer kind: primitive", common.by_layer_kind)):
      common.print_table(
          [title, "op ms/call", "share"],
          [[group, f"{ms:,.1f}", f"{share:.1%}"]
           for group, ms, share in common.group_ops(ops, key)[:top]])
    slowest = sorted(ops.items(), key=lambda kv: -kv[1][1])[:3]
    for op, (op_name, ms) in slowest:
      print(f"- {op}: {ms:,.1f} ms/call, {op_name}")
    print()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  unknown = set(_MODES.value) - {"train", "eval"}
  if unknown:
    raise app.UsageError(f"--modes: unknown {', '.join(sorted(unknown))}")
  mesh = parallel.make_mesh()
  rows, profiles = [], []
  for size in _SIZES.value:
    for image_size in (int(v) for v in _IMAGE_SIZES.value):
      config = common.make_config(size, image_size, _BATCH_SIZE.value,
                                  _NUM_BANDS.value)
      bench = common.Bench(config, mesh)
      for mode in _MODES.value:
        rows.append(_measure(bench, mode, profiles))
        print(" | ".join(str(v) for v in rows[-1]), file=sys.stderr, flush=True)
  common.print_header(
      "Train step and eval forward",
      (f"model: {common.model_switches(config)}, {_NUM_BANDS.value} bands",
       f"timing: median of {_STEPS.value} calls after {_WARMUP.value} "
       "warm-up calls" if not _MEMORY_ONLY.value else "compiled only"))
  common.print_table(_HEADER, rows)
  _print_profiles(profiles)


if __name__ == "__main__":
  app.run(main)
