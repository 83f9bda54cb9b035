"""The GPU suite's kernels section: the fused scan's kernels as ptxas builds
them on the device, beside the deviceless compile for the same GPU.

Two `gpu_suite_jobs kernels` children: one on the device, one on the CPU
backend compiling for the GPU the environment section found (H100, H200 or
A100; --smoke compiles for an H100, a CPU having no GPU of its own), so the
registers and shared memory docs/benchmarks.md gives from deviceless
compiles are checked against the device's. Standard library only, like the
suite's parent process.
"""

import re

from benchmarks.gpu_suite_report import SectionError, Skip

_FIGURES = ("registers", "spill_bytes", "smem_bytes")


def target_gpu(ctx) -> str | None:
  """The deviceless target (ops/gpu_targets.py) that is the environment
  section's device: h100, h200, a100, or None."""
  kind = ctx.result("environment").get("device_kind", "")
  found = re.search(r"\b(H100|H200|A100)\b", kind)
  return found.group(1).lower() if found else None


def kernels(ctx):
  target = "h100" if ctx.args.smoke else target_gpu(ctx)
  device = _child(ctx, "kernels_device", timeout=ctx.left() / 2)
  deviceless = (_child(ctx, "kernels_deviceless", f"--target={target}",
                       env={"JAX_PLATFORMS": "cpu"}) if target else
                {"status": "skipped", "reason": "no deviceless target for this "
                 "device (ops/gpu_targets.py: H100, H200, A100)"})
  runs = {"device": device, "deviceless": deviceless}
  if all(r.get("status") == "skipped" for r in runs.values()):
    raise Skip("; ".join(f"{name}: {r.get('reason')}" for name, r in runs.items()))
  figures = {name: f"{r.get('status')}: {r.get('compiled') or r.get('reason')}"
             for name, r in runs.items()}
  figures["rows"] = [dict(run=name, **row) for name, r in runs.items()
                     for row in r.get("rows", [])]
  figures["agree"] = _agree(device, deviceless)
  failed = [name for name, r in runs.items() if r.get("status") == "failed"]
  if failed:
    raise SectionError("; ".join(f"{name}: {runs[name].get('reason')}"
                                 for name in failed), figures)
  return figures


def _child(ctx, tag, *extra, timeout=None, env=None) -> dict:
  """A kernels job's figures; its failure or skip as a record."""
  try:
    return ctx.job("kernels", *extra, timeout=timeout, env=env, tag=tag)
  except Skip as e:
    return {"status": "skipped", "reason": str(e)}
  except SectionError as e:
    return dict(e.figures, status="failed", reason=str(e))


def _agree(device: dict, deviceless: dict):
  """Whether every state size compiled both ways has the same registers,
  spills and shared memory per kernel (None: nothing to compare)."""
  ok = lambda result: {r["d_state"]: r for r in result.get("rows", [])
                       if r.get("status") == "ok"}
  on_device, compiled = ok(device), ok(deviceless)
  both = sorted(set(on_device) & set(compiled))
  if not both:
    return None
  return all(on_device[n][k] == compiled[n][k] for n in both
             for k in on_device[n] if k.endswith(_FIGURES))
