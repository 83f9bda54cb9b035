"""The scan job of benchmarks/gpu_suite.py (see its docstring): the S6
selective scan per method at the model's shapes, agreement with the
sequential form on the device, bandwidth and exp bounds, and
jax-linear-attention's Mamba-1 kernel beside the fused one where it installs.
"""

import functools
import re

import jax
import jax.numpy as jnp

from benchmarks import common, gpu_suite_timing as timing
from benchmarks.gpu_suite_report import Skip
from pansharp_jax import ops
from pansharp_jax.ops import gpu_targets, pallas_launch, scan_kernel
from pansharp_jax.ops import scan_kernel_resources
from pansharp_jax.train import gpu_compile

try:  # PyPI jax-linear-attention: an outside Mosaic GPU Mamba-1 kernel
  from jla import ops as jla_ops
except ImportError:
  jla_ops = None

def _bandwidth():
  """(bytes/s, where it came from) of device memory; (None, why) on a CPU."""
  if not timing.on_gpu():
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
    methods = methods + [("sequential", None)] if timing.on_gpu() else [
        ("sequential", None)] + methods
    outputs = {}
    for method, chunk in methods:
      job.row({"L": length, "method": method, "chunk": chunk},
              functools.partial(_scan_row, method, chunk, inputs, io, bandwidth,
                                outputs, sizes))
    _agreement(job, length, outputs)
  length = max(sizes.scan_lengths)
  job.row({"L": length, "method": "jax-linear-attention mamba1", "chunk": None},
          functools.partial(_outside_reference, batch, length, sizes))
  chunked = [r for r in job.result["rows"] if r.get("method") == "chunked"
             and r["L"] == max(sizes.scan_lengths) and r.get("x_bound_fwdbwd")]
  if chunked:
    best = min(chunked, key=lambda r: r["x_bound_fwdbwd"])
    job.set(chunked_best=f"chunk {best['chunk']}: fwd+bwd {best['x_bound_fwdbwd']:.1f}"
            f"x the bandwidth bound at L={best['L']}",
            goal="chunked fwd+bwd within 3x of the bandwidth bound",
            goal_met=best["x_bound_fwdbwd"] <= 3)


def kernels(job, args, sizes):
  """The fused scan's forward and backward kernels as ptxas builds them, per
  state size: registers, spills, Mosaic GPU's shared memory. Compiled on this
  host's GPU, or with --target deviceless for that GPU (on the CPU backend,
  ops/scan_kernel_resources.py); the suite's kernels section runs both."""
  if args.target:
    gpu_compile.compile_on_cpu()
    if gpu_targets.missing():
      raise Skip(f"deviceless compile for {args.target}: {gpu_targets.missing()}")
    where = f"deviceless for {gpu_targets.get(args.target).description}"
  elif timing.on_gpu():
    # A cached executable would skip ptxas, and its report with it.
    jax.config.update("jax_enable_compilation_cache", False)
    where = f"on the device, {jax.devices()[0].device_kind}"
  else:
    raise Skip(f"the fused kernels compile for an NVIDIA GPU (backend: "
               f"{jax.default_backend()}); --target compiles them deviceless")
  if pallas_launch.unavailable_reason():
    raise Skip(pallas_launch.unavailable_reason())
  job.set(compiled=where, operands="as models/assm.py passes them: u, delta, "
          "B bfloat16, C float32, no gate")
  for d_state in sizes.kernel_d_states:
    job.row({"d_state": d_state}, functools.partial(_kernel_row, args.target, d_state))


def _kernel_row(target, d_state):
  row = {}
  for k in scan_kernel_resources.kernel_resources(target, d_state=d_state):
    row.update({f"{k.kernel}_registers": k.registers,
                f"{k.kernel}_spill_bytes": k.spill_bytes,
                f"{k.kernel}_smem_bytes": k.smem_bytes})
  return row


def _scan_row(method, chunk, inputs, io, bandwidth, outputs, sizes):
  """Compiles, runs (keeping y and the gradients in `outputs`) and times.
  The fused kernel's row adds its bounds: its own HBM traffic
  (ops/scan_kernel.hbm_bytes) over the bandwidth, and its exps over the
  GPU's exp throughput."""
  if method == "fused" and not timing.on_gpu():
    raise Skip(f"the fused kernel needs an NVIDIA GPU (backend: "
               f"{jax.default_backend()}); tests/ops/test_scan_kernel.py "
               "checks it in the interpreter")
  fwd_fn, both_fn = common.scan_fns(method, chunk or 256)
  fwd, both, row = timing.compile_pair((fwd_fn, inputs), (both_fn, inputs))
  if "status" in row:
    return row
  outputs[(method, chunk)] = (fwd.executable(inputs), both.executable(inputs))
  for name, compiled, nbytes in (("fwd", fwd, io[0]), ("fwdbwd", both, io[1])):
    seconds = timing.seconds(compiled.executable, inputs, steps=sizes.micro_steps)
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


def _outside_reference(batch, length, sizes):
  """jax-linear-attention's Mamba-1 Mosaic GPU kernel beside the fused one,
  bf16 with z, at the model's channels rounded up to a multiple of 128 (the
  channel counts it supports): ms each and the largest difference of y."""
  if jla_ops is None:
    raise Skip("jax-linear-attention is not installed (PyPI: it pins jax "
               "0.11.2 and Python >= 3.12, as the GPU image has)")
  if not timing.on_gpu():
    raise Skip(f"its Mosaic GPU kernel needs a Hopper GPU (backend: "
               f"{jax.default_backend()})")
  channels = -(-sizes.scan_channels // 128) * 128
  inputs = common.scan_inputs(batch, length, channels, sizes.scan_d_state,
                              jnp.bfloat16)

  def theirs(x):
    return jla_ops.linear_attention(
        "mamba1", x["C"], x["B"], x["u"], dt=x["delta"], a=x["A"], d=x["D"],
        z=x["z"], dt_bias=x["delta_bias"], dt_softplus=True,
        impl="mosaic_gpu")[0]

  def ours(x):
    return ops.selective_scan(**x, method="fused")

  row, outputs = {"channels": channels, "dtype": "bfloat16"}, {}
  for name, fn in (("jla", theirs), ("fused", ours)):
    loss = lambda x, fn=fn: jnp.sum(fn(x).astype(jnp.float32))
    fwd, both, compiled = timing.compile_pair(
        (jax.jit(fn), inputs), (jax.jit(jax.grad(loss)), inputs))
    if "status" in compiled:
      return compiled
    outputs[name] = fwd.executable(inputs)
    row[f"{name}_fwd_ms"] = timing.seconds(
        fwd.executable, inputs, steps=sizes.micro_steps) * 1e3
    row[f"{name}_fwdbwd_ms"] = timing.seconds(
        both.executable, inputs, steps=sizes.micro_steps) * 1e3
  row["y_max_abs_diff"] = float(jnp.max(jnp.abs(
      outputs["jla"].astype(jnp.float32) - outputs["fused"].astype(jnp.float32))))
  return row
