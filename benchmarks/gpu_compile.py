"""Each GPU config's train step compiled for an H100 on this (CPU) host.

  python -m benchmarks.gpu_compile                        # base_256, base_512, large_256
  python -m benchmarks.gpu_compile --configs=base_256 --scans=auto,fused --batch_sizes=1

Deviceless (train/gpu_compile.py): XLA builds the real GPU program (ptxas,
the fused scan's Mosaic GPU kernels) for the target without a GPU; a compile
error fails the script (exit 1), so CI runs it. Per config, scan method and
global batch size it prints the CPU seconds to lower and to compile, XLA's
per-device memory (arguments, outputs, temporaries; against the budget
`--mode=probe` allows on an H100 and an H200: the config's
probe.memory_fraction of what JAX's allocator takes, which is
XLA_PYTHON_CLIENT_MEM_FRACTION, 0.75 unless set, of the total as CUDA
reports it), the flops and bytes of
one train step with loop trip counts counted (benchmarks/gpu_cost.py: XLA's
bytes overcount, the fused kernels' own are exact), and the roofline lower
bound of the step time on an H100 and an H200: max(flops / dense bf16 peak,
kernel bytes / HBM bandwidth), peaks from ops/gpu_targets.py. Estimates, not measurements:
the real step is slower (fp32 parts, launch gaps, unfused ops). Attention
is the chunked fallback (cuDNN's is built on the device).
"""

import importlib
import json
import sys
import time

from absl import app, flags

from benchmarks import common, gpu_cost
from pansharp_jax.ops import gpu_targets
from pansharp_jax.train import gpu_compile

_CONFIGS = flags.DEFINE_list("configs", ["base_256", "base_512", "large_256"],
                             "Config modules under configs/.")
_SCANS = flags.DEFINE_list("scans", ["fused"],
                           "config.model.scan_method values (auto: chunked on a GPU).")
_BATCHES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Global batch sizes.")
_TARGET = flags.DEFINE_enum("target", "h100", sorted(gpu_targets.TARGETS),
                            "The GPU compiled for.")
_FORWARD = flags.DEFINE_bool("forward", False,
                             "Also compile the evaluate/predict forward (batch 1).")
_JSON = flags.DEFINE_string("json", None, "Also write the rows to this JSON file.")

GIB = 2**30


def _config(name: str, scan: str):
  config = importlib.import_module(f"configs.{name}").get_config()
  config.model.scan_method = scan
  return config


def measure(name: str, scan: str, batch: int) -> dict:
  """One compile: memory, cost and roofline bounds, or the error."""
  row = {"config": name, "scan": scan, "batch": batch}
  start = time.process_time()
  try:
    config = _config(name, scan)
    lowered = gpu_compile.lower_train_step(config, batch, _TARGET.value)
    row["lower_cpu_s"] = time.process_time() - start
    compiled = lowered.compile()
  except Exception as e:  # pylint: disable=broad-except
    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    return row
  row["compile_cpu_s"] = time.process_time() - start
  m = compiled.memory_analysis()
  row.update(argument=m.argument_size_in_bytes, output=m.output_size_in_bytes,
             temp=m.temp_size_in_bytes, alias=m.alias_size_in_bytes)
  row["total"] = row["argument"] + row["output"] + row["temp"] - row["alias"]
  start = time.process_time()
  cost = gpu_cost.step_cost(compiled)
  row["cost_cpu_s"] = time.process_time() - start
  row.update(flops=cost.flops, xla_bytes=cost.xla_bytes, kernel_bytes=cost.kernel_bytes,
             loops=cost.loops, unknown_trips=cost.unknown_trips)
  for target in ("h100", "h200"):
    row[f"bound_{target}_ms"] = 1e3 * cost.seconds_on(gpu_targets.TARGETS[target])
    # What --mode=probe allows: memory_fraction of JAX's allocator limit.
    row[f"budget_{target}"] = (gpu_compile.allocator_limit(target)[0] *
                               config.probe.memory_fraction)
  print(f"{name} {scan} batch {batch}: {row['total'] / GIB:.2f} GiB, "
        f"{row['lower_cpu_s']:.0f} + {row['compile_cpu_s'] - row['lower_cpu_s']:.0f} "
        f"CPU s to lower + compile, {row['cost_cpu_s']:.0f} for the cost",
        file=sys.stderr, flush=True)
  return row


def forward(name: str, scan: str) -> dict:
  row = {"config": name, "scan": scan, "batch": 1, "program": "forward"}
  start = time.process_time()
  try:
    m = gpu_compile.lower_forward(_config(name, scan), 1, _TARGET.value).compile(
    ).memory_analysis()
  except Exception as e:  # pylint: disable=broad-except
    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    return row
  row["compile_cpu_s"] = time.process_time() - start
  row["total"] = (m.argument_size_in_bytes + m.output_size_in_bytes +
                  m.temp_size_in_bytes - m.alias_size_in_bytes)
  return row


def _table_row(row: dict) -> list:
  if "error" in row:
    return [row["config"], row["scan"], row["batch"], row["error"]] + [""] * 10
  fits = lambda t: "yes" if row["total"] <= row[f"budget_{t}"] else "no"
  lower = row["lower_cpu_s"]
  return [row["config"], row["scan"], row["batch"],
          f"{lower:.0f} + {row['compile_cpu_s'] - lower:.0f}",
          *(f"{row[k] / GIB:.2f}" for k in ("argument", "output", "temp", "total")),
          f"{fits('h100')} / {fits('h200')}", f"{row['flops'] / 1e12:.2f}",
          f"{row['xla_bytes'] / 1e9:.1f}", f"{row['kernel_bytes'] / 1e9:.1f}",
          f"{row['bound_h100_ms']:.1f} / {row['bound_h200_ms']:.1f}",
          f"{row['loops']} ({row['unknown_trips']})"]


def main(argv):
  del argv
  gpu_compile.compile_on_cpu()
  if gpu_targets.missing():
    raise SystemExit(f"gpu_compile: compiling for a GPU without one needs "
                     f"{gpu_targets.missing()}")
  rows = [measure(name, scan, int(batch)) for name in _CONFIGS.value
          for scan in _SCANS.value for batch in _BATCHES.value]
  forwards = ([forward(name, scan) for name in _CONFIGS.value for scan in _SCANS.value]
              if _FORWARD.value else [])
  peaks = ", ".join(f"{t.name} {t.bf16_dense_flops / 1e12:.0f} TFLOP/s bf16 dense, "
                    f"{t.hbm_bytes_per_s / 1e12:.2f} TB/s"
                    for t in (gpu_targets.TARGETS["h100"], gpu_targets.TARGETS["h200"]))
  common.print_header(
      f"Train steps compiled deviceless for {_TARGET.value} (per device, one GPU)",
      (f"roofline peaks: {peaks}", gpu_compile.ATTENTION_NOTE,
       "XLA GB: XLA's bytes accessed with loops counted, an overcount (sliced "
       "operands are charged whole); kernel GB: the fused scan kernels' own "
       "(scan_kernel.hbm_bytes); bound: max(flops / peak, kernel bytes / bandwidth)"))
  common.print_table(
      ["config", "scan", "batch", "CPU s lower + compile", "arguments GiB", "outputs GiB",
       "temporaries GiB", "total GiB", "fits the probe's budget H100 / H200", "TFLOP per step",
       "XLA GB per step", "kernel GB per step", "bound ms H100 / H200",
       "loops (trips unknown)"],
      [_table_row(r) for r in rows])
  if forwards:
    common.print_table(
        ["config", "scan", "batch", "forward compile CPU s", "forward total GiB"],
        [[r["config"], r["scan"], r["batch"], r.get("error") or
          f"{r['compile_cpu_s']:.0f}", "" if "error" in r else f"{r['total'] / GIB:.2f}"]
         for r in forwards])
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(rows + forwards, f, indent=2)
  if any("error" in r for r in rows + forwards):
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
