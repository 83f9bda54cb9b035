"""The measurements of benchmarks/gpu_suite.py, one job per child process.

  python -m benchmarks.gpu_suite_jobs JOB --result FILE --deadline UNIX_TIME

JOB is environment, attention, scan, train_step or original. The job writes
FILE (JSON) after every row it measures. A row that raises is recorded
`failed` with its reason and the next row runs; a row that cannot run here
(cuDNN on a CPU, say) is `skipped` with the reason; rows that would start
after the deadline are `skipped`. The suite kills the process if it runs
past its timeout and keeps the rows already written.
"""

import argparse
import dataclasses
import functools
import importlib.metadata
import os
import platform
import re
import statistics
import sys
import time
import traceback

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common, gpu_suite_train
from benchmarks.gpu_suite_report import Skip, to_json, write_atomic
from pansharp_jax.ops import attention as attention_lib
from pansharp_jax.ops import scan_kernel

GIB, MIB = 2**30, 2**20
_CPU_RUN_BUDGET = 4 * GIB    # temporaries a CPU run may take
_SLOW_S = 2.0                # one timed call is enough above this


@dataclasses.dataclass(frozen=True)
class Sizes:
  attn_tokens: tuple[int, ...]
  attn_heads: int            # base: dim 96 / 6 heads at full resolution
  attn_head_dim: int
  attn_ref_queries: int      # query rows the float32 reference computes
  scan_lengths: tuple[int, ...]
  scan_channels: int         # base: hidden = dim 96 x mlp_ratio 2
  scan_d_state: int
  scan_chunks: tuple[int, ...]
  scan_images: int           # x 2 directions x 2 modalities = scan batch
  image_size: int
  warmup: int
  steps: int                 # timed train steps
  micro_steps: int           # timed calls of an op (fewer when slow)


FULL = Sizes(attn_tokens=(4096, 16384, 65536), attn_heads=6, attn_head_dim=16,
             attn_ref_queries=512, scan_lengths=(4096, 65536),
             scan_channels=192, scan_d_state=16, scan_chunks=(64, 128, 256, 512),
             scan_images=1, image_size=256, warmup=2, steps=5, micro_steps=3)
SMOKE = Sizes(attn_tokens=(256, 1024), attn_heads=6, attn_head_dim=16,
              attn_ref_queries=128, scan_lengths=(512,), scan_channels=32,
              scan_d_state=4, scan_chunks=(64, 256), scan_images=1,
              image_size=32, warmup=1, steps=2, micro_steps=1)


class Job:
  """A job's figures: rows measured one at a time, saved after each."""

  def __init__(self, path: str, deadline: float):
    self.path, self.deadline = path, deadline
    self.result = {"rows": []}

  def set(self, **figures):
    self.result.update(figures)
    write_atomic(self.path, to_json(self.result))

  def row(self, labels: dict, measure) -> dict:
    """Appends `labels` + measure()'s figures as one row and saves."""
    row = dict(labels)
    if time.time() > self.deadline:
      row.update(status="skipped", reason="the job's time budget ran out")
    else:
      try:
        row.update(measure())
        row.setdefault("status", "ok")
      except Skip as e:
        row.update(status="skipped", reason=str(e))
      except Exception as e:  # pylint: disable=broad-except
        row.update(status="failed", reason=f"{type(e).__name__}: {e}"[:1000],
                   traceback=traceback.format_exc()[-2000:])
    print(row, file=sys.stderr, flush=True)
    self.result["rows"].append(row)
    self.set()
    return row


def _on_gpu() -> bool:
  return jax.default_backend() == "gpu"


def _run_budget() -> int:
  """Temporaries a run may take: half the device's memory limit (4 GiB on
  a CPU, which reports none)."""
  stats = jax.devices()[0].memory_stats() or {}
  return int(stats["bytes_limit"] * 0.5) if "bytes_limit" in stats else _CPU_RUN_BUDGET


def _compile(jitted, *args):
  """common.compile_fn; a compile that runs out of memory is a skip."""
  try:
    return common.compile_fn(jitted, *args)
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    raise Skip(f"XLA cannot compile it for this device's memory: "
               f"{str(e)[:300]}") from e


def _check_budget(*compiled):
  temp = max(c.temp_bytes for c in compiled)
  if temp > _run_budget():
    raise Skip(f"compiled, not run: XLA needs {temp / GIB:.1f} GiB of "
               f"temporaries, over the run budget of {_run_budget() / GIB:.1f} GiB")


def _compile_pair(fwd_call, both_call):
  """Compiles the forward and forward+backward (each `(jitted, *args)`);
  returns them and the row of their compile figures, marked skipped when
  their memory would not fit the budget."""
  fwd, both = _compile(*fwd_call), _compile(*both_call)
  row = {"compile_fwd_s": round(fwd.compile_s, 2),
         "compile_fwdbwd_s": round(both.compile_s, 2),
         "temp_fwd_mib": round(fwd.temp_bytes / MIB, 1),
         "temp_fwdbwd_mib": round(both.temp_bytes / MIB, 1)}
  try:
    _check_budget(fwd, both)
  except Skip as e:
    row.update(status="skipped", reason=str(e))
  return fwd, both, row


def _seconds(executable, *args, steps: int) -> float:
  """Median seconds of a call after a warm-up; one call when slow."""
  call = lambda _: executable(*args)
  first, _, _ = common.time_calls(call, None, warmup=1, steps=1)
  if first > _SLOW_S or steps <= 1:
    return first
  _, times, _ = common.time_calls(call, None, warmup=0, steps=steps - 1)
  return statistics.median([first] + times)


def _version(package: str):
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


# ---- environment ----


def environment(job, args, sizes):
  del args, sizes
  devices = jax.devices()
  stats = devices[0].memory_stats() or {}
  bandwidth, entry = common.known_bandwidth(devices[0].device_kind)
  job.set(
      platform=devices[0].platform, device_kind=devices[0].device_kind,
      device_count=len(devices), process_count=jax.process_count(),
      bytes_limit=stats.get("bytes_limit"),
      python=platform.python_version(), cpu=common.cpu_model(),
      nproc=os.cpu_count(), load_avg=[round(x, 2) for x in os.getloadavg()],
      versions={p: _version(p) for p in (
          "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "flax",
          "optax", "orbax-checkpoint", "grain", "numpy", "torch")},
      env={k: os.environ.get(k) for k in (
          "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE",
          "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_ALLOCATOR",
          "JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "JAX_COMPILATION_CACHE_DIR")},
      bandwidth_table=(f"{bandwidth / 1e12:g} TB/s ({entry})" if bandwidth
                       else "no entry for this device"),
      jax_environment_info=jax.print_environment_info(return_string=True))
  for device in devices:
    job.row({"device": str(device)}, lambda d=device: {
        "kind": d.device_kind, "platform": d.platform,
        **{f"{k}_gib": round(v / GIB, 3) for k, v in (d.memory_stats() or {}).items()
           if k in ("bytes_limit", "bytes_in_use", "peak_bytes_in_use")}})


# ---- attention ----


@jax.jit
def _reference_attention(q, k, v):
  """float32 softmax attention at full matmul precision (no TF32)."""
  scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision="highest")
  p = jax.nn.softmax(scores / np.sqrt(q.shape[-1]), axis=-1)
  return jnp.einsum("bhqk,bkhd->bqhd", p, v, precision="highest")


def attention(job, args, sizes):
  del args
  h, d = sizes.attn_heads, sizes.attn_head_dim
  job.set(shape=f"batch 1, heads {h}, head_dim {d}, queries = keys = tokens",
          reference=f"float32 at precision 'highest' on {sizes.attn_ref_queries} "
                    "evenly spaced query rows",
          run_budget_gib=round(_run_budget() / GIB, 1),
          fwd_tflops="4 x heads x tokens^2 x head_dim / forward time")
  for tokens in sizes.attn_tokens:
    q, k, v, g = (jax.random.normal(key, (1, tokens, h, d), jnp.float32)
                  for key in jax.random.split(jax.random.key(tokens), 4))
    rows = jnp.asarray(np.linspace(0, tokens - 1, min(
        tokens, sizes.attn_ref_queries)).astype(np.int32))
    ref = _reference_attention(q[:, rows], k, v)
    for dtype in ("bfloat16", "float32"):
      for impl in ("cudnn", "chunked", "xla"):
        job.row({"tokens": tokens, "dtype": dtype, "impl": impl},
                functools.partial(_attention_row, impl, jnp.dtype(dtype),
                                  (q, k, v), g, rows, ref, sizes))


def _attention_row(impl, dtype, qkv, g, rows, ref, sizes):
  if impl == "cudnn" and not _on_gpu():
    raise Skip(f"cuDNN flash attention needs a GPU (backend: {jax.default_backend()})")
  if impl == "cudnn" and dtype == jnp.float32:
    raise Skip("cuDNN flash attention takes bfloat16/float16 only")
  attend = functools.partial(attention_lib.attention, impl=impl)
  loss = lambda q, k, v, g: jnp.sum(attend(q, k, v).astype(jnp.float32) * g)
  args = [x.astype(dtype) for x in qkv]
  fwd, both, row = _compile_pair(
      (jax.jit(attend), *args),
      (jax.jit(jax.grad(loss, argnums=(0, 1, 2))), *args, g))
  if "status" in row:
    return row
  out = fwd.executable(*args)[:, rows].astype(jnp.float32)
  row["max_abs_diff"] = float(jnp.max(jnp.abs(out - ref)))
  fwd_s = _seconds(fwd.executable, *args, steps=sizes.micro_steps)
  both_s = _seconds(both.executable, *args, g, steps=sizes.micro_steps)
  tokens, (h, d) = args[0].shape[1], args[0].shape[2:]
  return dict(row, fwd_ms=fwd_s * 1e3, fwdbwd_ms=both_s * 1e3,
              fwd_tflops=4 * h * tokens**2 * d / fwd_s / 1e12)


# ---- selective scan ----


def _bandwidth():
  """(bytes/s, where it came from) of device memory; (None, why) on a CPU."""
  if not _on_gpu():
    return None, (f"skipped: the bandwidth bound needs a GPU (backend: "
                  f"{jax.default_backend()})")
  kind = jax.devices()[0].device_kind
  bandwidth, entry = common.known_bandwidth(kind)
  if bandwidth:
    return bandwidth, f"data sheet: {kind} ({entry}) {bandwidth / 1e12:g} TB/s"
  measured = common.measure_bandwidth()
  return measured, f"measured: x + 1 over 1 GiB on {kind}, {measured / 1e12:.2f} TB/s"


def scan(job, args, sizes):
  del args
  batch = 2 * 2 * sizes.scan_images
  c, n = sizes.scan_channels, sizes.scan_d_state
  bandwidth, source = _bandwidth()
  job.set(batch=batch, batch_note=f"2 directions x 2 modalities x "
          f"{sizes.scan_images} image (models/assm.py folds them into the batch)",
          channels=c, d_state=n, dtype="float32", inputs="u, delta, A, B, C, D, "
          "delta_bias (no z, as the model calls it); backward w.r.t. all",
          bandwidth=source, io_bytes="reads and writes of the op's own inputs, "
          "output and gradients (common.scan_io_bytes)")
  for length in sizes.scan_lengths:
    inputs = common.scan_inputs(batch, length, c, n)
    inputs.pop("z")
    io = [common.scan_io_bytes(batch, length, c, n, backward=b) for b in (False, True)]
    # The sequential reference runs last on a GPU, where it is by far the
    # slowest at 65k tokens (the time budget goes to the fast forms first),
    # and first on a CPU, where it is the fast one.
    methods = [("fused", None), ("associative", None)] + [
        ("chunked", c) for c in sizes.scan_chunks]
    methods = methods + [("sequential", None)] if _on_gpu() else [
        ("sequential", None)] + methods
    outputs = {}
    for method, chunk in methods:
      job.row({"L": length, "method": method, "chunk": chunk},
              functools.partial(_scan_row, method, chunk, inputs, io, bandwidth,
                                outputs, sizes))
    _agreement(job, length, outputs)
  chunked = [r for r in job.result["rows"] if r.get("method") == "chunked"
             and r["L"] == max(sizes.scan_lengths) and r.get("x_bound_fwdbwd")]
  if chunked:
    best = min(chunked, key=lambda r: r["x_bound_fwdbwd"])
    job.set(chunked_best=f"chunk {best['chunk']}: fwd+bwd {best['x_bound_fwdbwd']:.1f}"
            f"x the bandwidth bound at L={best['L']}",
            goal="chunked fwd+bwd within 3x of the bandwidth bound",
            goal_met=best["x_bound_fwdbwd"] <= 3)


def _scan_row(method, chunk, inputs, io, bandwidth, outputs, sizes):
  """Compiles, runs (keeping y and the gradients in `outputs`) and times.
  The fused kernel's row adds its bounds: its own HBM traffic
  (ops/scan_kernel.hbm_bytes) over the bandwidth, and its exps over the
  GPU's exp throughput."""
  if method == "fused" and not _on_gpu():
    raise Skip(f"the fused kernel needs an NVIDIA GPU (backend: "
               f"{jax.default_backend()}); tests/ops/test_scan_kernel.py "
               "checks it in the interpreter")
  fwd_fn, both_fn = common.scan_fns(method, chunk or 256)
  fwd, both, row = _compile_pair((fwd_fn, inputs), (both_fn, inputs))
  if "status" in row:
    return row
  outputs[(method, chunk)] = (fwd.executable(inputs), both.executable(inputs))
  for name, compiled, nbytes in (("fwd", fwd, io[0]), ("fwdbwd", both, io[1])):
    seconds = _seconds(compiled.executable, inputs, steps=sizes.micro_steps)
    row[f"{name}_ms"] = seconds * 1e3
    row[f"io_{name}_mb"] = round(nbytes / 1e6, 1)
    row[f"achieved_{name}_gbps"] = nbytes / seconds / 1e9
    if bandwidth:
      row[f"x_bound_{name}"] = seconds / (nbytes / bandwidth)
    if method == "fused":
      row.update(_fused_bounds(name, seconds, inputs, bandwidth))
  return row


def _fused_bounds(name, seconds, inputs, bandwidth):
  """The fused kernel's time over its HBM bound and over its exp bound.

  Exps: one per (token, channel, state) forward; the backward recomputes
  1.5 tiles' worth (half tiles from the tile start, ops/scan_tiles.py) and
  takes one more per step in the adjoint: 3.5 per element in all.
  """
  batch, length, channels = inputs["u"].shape
  d_state = inputs["A"].shape[1]
  kernel_bytes = scan_kernel.hbm_bytes(
      batch, length, channels, d_state, inputs["u"].dtype.itemsize,
      gate="z" in inputs, backward=name == "fwdbwd")
  row = {f"kernel_io_{name}_mb": round(kernel_bytes / 1e6, 1)}
  if bandwidth:
    row[f"x_kernel_hbm_bound_{name}"] = seconds / (kernel_bytes / bandwidth)
  rate, source = _exp_rate()
  row["exp_rate"] = source
  if rate:
    exps = batch * length * channels * d_state * (1 if name == "fwd" else 3.5)
    row[f"x_exp_bound_{name}"] = seconds / (exps / rate)
  return row


# Boost clocks (Hz) of the GPUs the suite is run on, for the exp bound: the
# SFU does 16 exp2 per SM per clock on sm_80 and sm_90 (CUDA programming
# guide, arithmetic instruction throughput).
_BOOST_CLOCK = ((("h100",), 1.98e9), (("h200",), 1.98e9), (("a100",), 1.41e9))


def _exp_rate():
  """(exps per second, where it came from) or (None, why not)."""
  device = jax.devices()[0]
  words = set(re.split(r"[^a-z0-9]+", device.device_kind.lower()))
  clock = next((c for entry, c in _BOOST_CLOCK if words.issuperset(entry)), None)
  sms = getattr(device, "core_count", None)
  if not clock or not sms:
    return None, f"no SM count or clock known for {device.device_kind}"
  rate = sms * 16 * clock
  return rate, (f"{sms} SMs x 16 exp/clock x {clock / 1e9:.2f} GHz = "
                f"{rate / 1e12:.2f} T exp/s")


def _agreement(job, length, outputs):
  """Each form's y (max abs difference) and gradients (max difference over
  the largest magnitude, per input) against the sequential form's."""
  reference = outputs.pop(("sequential", None), None)
  for row in job.result["rows"]:
    if row.get("L") != length or row.get("status") != "ok":
      continue
    key = (row["method"], row["chunk"])
    if key == ("sequential", None):
      row["agreement"] = "reference" if reference else "-"
    elif reference is None:
      row["agreement"] = "no sequential reference (not run)"
    elif key in outputs:
      (y, grads), (y_ref, grads_ref) = outputs[key], reference
      row["y_max_abs_diff"] = float(jnp.max(jnp.abs(y - y_ref)))
      row["grad_max_rel_diff"] = max(
          float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-30))
          for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)))
  outputs.clear()
  job.set()


JOBS = {"environment": environment, "attention": attention, "scan": scan,
        "train_step": gpu_suite_train.train_step,
        "original": gpu_suite_train.original}


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite_jobs")
  parser.add_argument("job", choices=sorted(JOBS))
  parser.add_argument("--result", required=True)
  parser.add_argument("--deadline", type=float, default=float("inf"))
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--rows", default=",".join(gpu_suite_train.TRAIN_ROWS))
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--batch_from", default="--batch")
  parser.add_argument("--probe_max_batch", type=int, default=16)
  parser.add_argument("--original_path", default=None)
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()  # common's model switches keep their defaults
  job = Job(args.result, args.deadline)
  try:
    JOBS[args.job](job, args, SMOKE if args.smoke else FULL)
    job.set(status="ok")
  except Skip as e:
    job.set(status="skipped", reason=str(e))
  except Exception as e:  # pylint: disable=broad-except
    job.set(status="failed", reason=f"{type(e).__name__}: {e}"[:1000],
            traceback=traceback.format_exc()[-3000:])
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
