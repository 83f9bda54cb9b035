"""Device memory: the batch-size probe and live readings (SPEC §4).

The probe compiles the real train step for global batch sizes from large to
small and reads XLA's memory analysis of each executable: per device,
arguments + outputs + temporaries - aliased (donated) buffers. The first size
within `memory_fraction` of the device memory wins, and one real step at that
size confirms it; a step that still runs out of memory moves on to the next
size. No trial-and-error OOMs: only the confirming step ever runs.
"""

import dataclasses
import json
import os
import time

from absl import logging
import jax
import numpy as np

from pansharp_jax.ops import backend
from pansharp_jax.train import builder, gpu_compile, parallel

GIB = 2**30


class ProbeError(RuntimeError):
  """Not even the smallest batch fits the memory budget; `result` has the table."""

  def __init__(self, message: str, result: "ProbeResult"):
    super().__init__(message)
    self.result = result


@dataclasses.dataclass
class Measurement:
  """XLA's per-device memory analysis of the train step at one batch size."""

  batch_size: int          # global
  per_device: int
  argument: int            # bytes
  output: int
  temp: int
  alias: int
  compile_s: float
  fits: bool
  step: str = ""           # the confirming real step: "ok", "OOM" or "" (not run)

  @property
  def total(self) -> int:
    return self.argument + self.output + self.temp - self.alias


@dataclasses.dataclass
class Budget:
  limit: int               # bytes per device
  fraction: float
  source: str              # where `limit` came from

  @property
  def bytes(self) -> int:
    return int(self.limit * self.fraction)


def budget(config) -> Budget:
  """The memory a train step may take per device.

  GPUs report their allocator's limit; CPUs report nothing, so the configured
  `probe.cpu_budget_gb` stands in for it.
  """
  fraction = float(config.probe.memory_fraction)
  stats = [d.memory_stats() or {} for d in jax.local_devices()]
  limits = [s["bytes_limit"] for s in stats if "bytes_limit" in s]
  if limits:
    kind = jax.local_devices()[0].device_kind
    return Budget(min(limits), fraction, f"{kind} bytes_limit")
  return Budget(int(float(config.probe.cpu_budget_gb) * GIB), fraction,
                "probe.cpu_budget_gb")


def candidates(max_batch_size: int, num_devices: int) -> list[int]:
  """Global batch sizes to try: halving from the maximum, whole per device."""
  sizes, size = [], max_batch_size
  while size >= num_devices:
    rounded = size // num_devices * num_devices
    if rounded not in sizes:
      sizes.append(rounded)
    size //= 2
  return sizes or [num_devices]


def measure(train_step, state, batch_size: int, config, mesh, limit: int):
  """Compiles `train_step` at `batch_size`; returns (executable, Measurement)."""
  start = time.perf_counter()
  compiled = train_step.lower(
      state, parallel.abstract_batch(config, batch_size, mesh)).compile()
  analysis = compiled.memory_analysis()
  m = Measurement(
      batch_size=batch_size, per_device=batch_size // mesh.devices.size,
      argument=analysis.argument_size_in_bytes,
      output=analysis.output_size_in_bytes,
      temp=analysis.temp_size_in_bytes, alias=analysis.alias_size_in_bytes,
      compile_s=time.perf_counter() - start, fits=False)
  m.fits = m.total <= limit
  return compiled, m


def _runs_one_step(compiled, init, batch_size: int, config, mesh) -> bool:
  """One real step at `batch_size` on zeros; False if it runs out of memory."""
  local = parallel.abstract_batch(config, batch_size // jax.process_count(), mesh)
  batch = parallel.shard_batch(
      {k: np.zeros(v.shape, v.dtype) for k, v in local.items()}, mesh)
  try:
    jax.block_until_ready(compiled(init(jax.random.PRNGKey(0)), batch))
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return False
  return True


@dataclasses.dataclass
class ProbeResult:
  batch_size: int
  budget: Budget
  measurements: list[Measurement]
  notes: list[str] = dataclasses.field(default_factory=list)  # how it was compiled


def probe(config, mesh, model, optimizer, train_step, plan: Budget | None = None,
          runs: bool = True, notes: list[str] = ()) -> ProbeResult:
  """The largest global batch size whose train step fits the budget.

  plan: the budget (default: the local devices'); runs: False for a mesh of
  compile-only devices, where no confirming step can run; notes: how the
  step was built, for the table.
  """
  plan = plan or budget(config)
  init = builder.make_init(config, model, optimizer, mesh)
  state = jax.eval_shape(init, jax.random.PRNGKey(0))
  rows = []
  for size in candidates(int(config.probe.max_batch_size), mesh.devices.size):
    compiled, m = measure(train_step, state, size, config, mesh, plan.bytes)
    rows.append(m)
    logging.info("probe: batch %d needs %.2f GiB per device (budget %.2f GiB)",
                 size, m.total / GIB, plan.bytes / GIB)
    if not m.fits:
      continue
    if config.probe.confirm and runs:
      m.step = "ok" if _runs_one_step(compiled, init, size, config, mesh) else "OOM"
      if m.step == "OOM":
        continue
    return ProbeResult(size, plan, rows, list(notes))
  raise ProbeError(
      f"memory probe: no batch size fits {plan.bytes / GIB:.2f} GiB per device "
      f"({plan.fraction:g} x {plan.limit / GIB:.2f} GiB, {plan.source}); the "
      f"smallest needs {rows[-1].total / GIB:.2f} GiB. Try model.remat=True, "
      "model.dtype=bfloat16 or a smaller data.image_size.",
      ProbeResult(0, plan, rows, list(notes)))


def format_table(result: ProbeResult) -> str:
  """The probe's measurements as a Markdown table (GiB per device)."""
  lines = [
      f"Memory budget per device: {result.budget.bytes / GIB:.2f} GiB "
      f"({result.budget.fraction:g} x {result.budget.limit / GIB:.2f} GiB, "
      f"{result.budget.source})", "",
      "| batch | per device | arguments | outputs | temporaries | aliased "
      "| total | fits | step | compile s |",
      "|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|---:|"]
  for m in result.measurements:
    gib = [f"{b / GIB:.3f}" for b in (m.argument, m.output, m.temp, m.alias, m.total)]
    mark = "**" if m.batch_size == result.batch_size else ""
    lines.append(
        f"| {mark}{m.batch_size}{mark} | {m.per_device} | " + " | ".join(gib) +
        f" | {'yes' if m.fits else 'no'} | {m.step or '-'} | {m.compile_s:.1f} |")
  if result.notes:
    lines += [""] + [f"Note: {note}" for note in result.notes]
  if result.batch_size:
    lines += ["", f"Picked global batch size {result.batch_size}."]
  return "\n".join(lines)


def probe_config(config, mesh, **options) -> ProbeResult:
  """`probe` of the model and train step that `config` builds."""
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  train_step = builder.jit_train_step(model, optimizer, config, mesh)
  return probe(config, mesh, model, optimizer, train_step, **options)


def probe_target(config) -> ProbeResult:
  """The probe of `config.probe.target` GPUs, compiled for them deviceless."""
  name = config.probe.target
  notes = [gpu_compile.ATTENTION_NOTE] if config.model.attn_impl == "auto" else []
  config = gpu_compile.deviceless_config(config)
  mesh = gpu_compile.target_mesh(name, int(config.probe.target_devices))
  limit, source = gpu_compile.allocator_limit(name)
  plan = Budget(limit, float(config.probe.memory_fraction), source)
  with backend.tracing_for("gpu"):
    return probe_config(config, mesh, plan=plan, runs=False, notes=notes)


def run_probe(config, workdir: str) -> ProbeResult:
  """--mode=probe: measures, prints the table, writes WORKDIR/probe.json."""
  if config.probe.target:
    result = probe_target(config)
  else:
    result = probe_config(config, parallel.make_mesh())
  print(format_table(result), flush=True)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "probe.json"), "w") as f:
      json.dump(dataclasses.asdict(result), f, indent=2)
  return result


def device_memory() -> dict[str, float]:
  """In-use, peak and limit (GiB) of the fullest local device, where reported."""
  stats = [d.memory_stats() for d in jax.local_devices()]
  stats = [s for s in stats if s]
  out = {}
  for key, name, pick in (("bytes_in_use", "mem_in_use_gb", max),
                          ("peak_bytes_in_use", "mem_peak_gb", max),
                          ("bytes_limit", "mem_limit_gb", min)):
    values = [s[key] for s in stats if key in s]
    if values:
      out[name] = pick(values) / GIB
  return out
