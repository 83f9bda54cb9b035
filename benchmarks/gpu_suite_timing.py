"""Compiling and timing helpers shared by the GPU suite's jobs
(benchmarks/gpu_suite_jobs.py, gpu_suite_scan.py)."""

import statistics

import jax

from benchmarks import common
from benchmarks.gpu_suite_report import Skip

GIB, MIB = 2**30, 2**20
CPU_RUN_BUDGET = 4 * GIB    # temporaries a CPU run may take
SLOW_S = 2.0                # one timed call is enough above this


def on_gpu() -> bool:
  return jax.default_backend() == "gpu"


def run_budget() -> int:
  """Temporaries a run may take: half the device's memory limit (4 GiB on
  a CPU, which reports none)."""
  stats = jax.devices()[0].memory_stats() or {}
  return int(stats["bytes_limit"] * 0.5) if "bytes_limit" in stats else CPU_RUN_BUDGET


def compile(jitted, *args):
  """common.compile_fn; a compile that runs out of memory is a skip."""
  try:
    return common.compile_fn(jitted, *args)
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    raise Skip(f"XLA cannot compile it for this device's memory: "
               f"{str(e)[:300]}") from e


def check_budget(*compiled):
  temp = max(c.temp_bytes for c in compiled)
  if temp > run_budget():
    raise Skip(f"compiled, not run: XLA needs {temp / GIB:.1f} GiB of "
               f"temporaries, over the run budget of {run_budget() / GIB:.1f} GiB")


def compile_pair(fwd_call, both_call):
  """Compiles the forward and forward+backward (each `(jitted, *args)`);
  returns them and the row of their compile figures, marked skipped when
  their memory would not fit the budget."""
  fwd, both = compile(*fwd_call), compile(*both_call)
  row = {"compile_fwd_s": round(fwd.compile_s, 2),
         "compile_fwdbwd_s": round(both.compile_s, 2),
         "temp_fwd_mib": round(fwd.temp_bytes / MIB, 1),
         "temp_fwdbwd_mib": round(both.temp_bytes / MIB, 1)}
  try:
    check_budget(fwd, both)
  except Skip as e:
    row.update(status="skipped", reason=str(e))
  return fwd, both, row


def seconds(executable, *args, steps: int) -> float:
  """Median seconds of a call after a warm-up; one call when slow."""
  call = lambda _: executable(*args)
  first, _, _ = common.time_calls(call, None, warmup=1, steps=1)
  if first > SLOW_S or steps <= 1:
    return first
  _, times, _ = common.time_calls(call, None, warmup=0, steps=steps - 1)
  return statistics.median([first] + times)
