"""The measurements of benchmarks/gpu_suite.py, one job per child process.

  python -m benchmarks.gpu_suite_jobs JOB --result FILE --deadline UNIX_TIME

JOB is environment, attention, scan, kernels, train_step or original. The job writes
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
import sys
import time
import traceback

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common, gpu_suite_scan, gpu_suite_train
from benchmarks import gpu_suite_timing as timing
from benchmarks.gpu_suite_report import Skip, to_json, write_atomic
from pansharp_jax.ops import attention as attention_lib

GIB = timing.GIB


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
  kernel_d_states: tuple[int, ...]  # the fused kernels' padded state sizes
  image_size: int
  warmup: int
  steps: int                 # timed train steps
  micro_steps: int           # timed calls of an op (fewer when slow)


FULL = Sizes(attn_tokens=(4096, 16384, 65536), attn_heads=6, attn_head_dim=16,
             attn_ref_queries=512, scan_lengths=(4096, 65536),
             scan_channels=192, scan_d_state=16, scan_chunks=(64, 128, 256, 512),
             scan_images=1, kernel_d_states=(16, 32), image_size=256, warmup=2,
             steps=5, micro_steps=3)
SMOKE = Sizes(attn_tokens=(256, 1024), attn_heads=6, attn_head_dim=16,
              attn_ref_queries=128, scan_lengths=(512,), scan_channels=32,
              scan_d_state=4, scan_chunks=(64, 256), scan_images=1,
              kernel_d_states=(16,),
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
          run_budget_gib=round(timing.run_budget() / GIB, 1),
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
  if impl == "cudnn" and not timing.on_gpu():
    raise Skip(f"cuDNN flash attention needs a GPU (backend: {jax.default_backend()})")
  if impl == "cudnn" and dtype == jnp.float32:
    raise Skip("cuDNN flash attention takes bfloat16/float16 only")
  attend = functools.partial(attention_lib.attention, impl=impl)
  loss = lambda q, k, v, g: jnp.sum(attend(q, k, v).astype(jnp.float32) * g)
  args = [x.astype(dtype) for x in qkv]
  fwd, both, row = timing.compile_pair(
      (jax.jit(attend), *args),
      (jax.jit(jax.grad(loss, argnums=(0, 1, 2))), *args, g))
  if "status" in row:
    return row
  out = fwd.executable(*args)[:, rows].astype(jnp.float32)
  row["max_abs_diff"] = float(jnp.max(jnp.abs(out - ref)))
  fwd_s = timing.seconds(fwd.executable, *args, steps=sizes.micro_steps)
  both_s = timing.seconds(both.executable, *args, g, steps=sizes.micro_steps)
  tokens, (h, d) = args[0].shape[1], args[0].shape[2:]
  return dict(row, fwd_ms=fwd_s * 1e3, fwdbwd_ms=both_s * 1e3,
              fwd_tflops=4 * h * tokens**2 * d / fwd_s / 1e12)


JOBS = {"environment": environment, "attention": attention, "scan": gpu_suite_scan.scan,
        "kernels": gpu_suite_scan.kernels,
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
  parser.add_argument("--target", default=None,
                      help="kernels: compile deviceless for this GPU (ops/gpu_targets.py)")
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
