"""The train-step and original-model jobs of benchmarks/gpu_suite.py.

Run through benchmarks/gpu_suite_jobs.py (`train_step`, `original`): each
row is one model config at 256 px (the tiny model at 32 px in --smoke),
built from configs/base_256.py (configs/default.py) as main.py builds it, so
that main.py --mode=probe in the suite's probe section compiles the same
programs (from the shared compilation cache).
"""

import functools
import time

import jax

from benchmarks import common, compare_original, gpu_suite_sections
from benchmarks.gpu_suite_report import Skip
from configs import base_256
from configs import default as default_config
from pansharp_jax.train import builder, memory, parallel

GIB = 2**30
_EVAL_RESERVE_S = 45         # time the eval forward's compile and calls need


TRAIN_ROWS = {  # row: (model size, dtype, depth, probe for the batch, eval)
    "base_bf16_remat": ("base", "bfloat16", 0, True, True),
    "base_f32_remat": ("base", "float32", 0, True, False),
    "tiny_bf16_remat": ("tiny", "bfloat16", 0, False, False),
    "base_depth1_bf16_remat": ("base", "bfloat16", 1, False, False),
    "base_bf16_remat_fused": ("base", "bfloat16", 0, False, False),
}
# Rows whose scan is not the config's ("auto": chunked on a GPU).
ROW_SCAN_METHOD = {"base_bf16_remat_fused": "fused"}


def row_config(name: str, batch: int, args, sizes):
  """The row's config: configs/base_256.py with the row's size, dtype and
  depth, remat on, as main.py --config would build it. In --smoke every
  row is configs/default.py with gpu_suite_sections.SMOKE_CONFIG (the tiny
  float32 model at 32 px) that the probe and end_to_end sections run too."""
  size, dtype, depth, _, _ = TRAIN_ROWS[name]
  if args.smoke:
    config = default_config.get_config()
    config.update_from_flattened_dict(gpu_suite_sections.SMOKE_CONFIG)
    config.batch_size = batch
  else:
    config = common.make_config(size, sizes.image_size, batch, 4,
                                base=base_256.get_config())
    config.model.dtype, config.model.remat = dtype, True
    config.model.scan_method = ROW_SCAN_METHOD.get(name, config.model.scan_method)
    if depth:
      config.model.depth = depth
  config.probe.max_batch_size = args.probe_max_batch
  return config


def train_step(job, args, sizes):
  mesh = parallel.make_mesh()
  for name in args.rows.split(","):
    job.row({"row": name}, functools.partial(_train_row, name, mesh, args, sizes))


def _skip_in_smoke(name, args):
  """In --smoke every row would be the same program (row_config): the
  probed row runs it, with the eval forward; the others would only add a
  lowering each (the slowest part of a CPU smoke run after the compile)."""
  if args.smoke and name != "base_bf16_remat":
    raise Skip("--smoke: every row is the smoke config, which "
               "base_bf16_remat runs")


def _train_row(name, mesh, args, sizes):
  _skip_in_smoke(name, args)
  _, _, _, probe, evaluate = TRAIN_ROWS[name]
  if probe:
    bench, compiled, row = _probed(name, mesh, args, sizes)
  else:
    row = {"batch": args.batch, "batch_from": args.batch_from}
    bench = common.Bench(row_config(name, args.batch, args, sizes), mesh)
    compiled = bench.compile_train()
    row["compile_s"] = round(compiled.compile_s, 1)
  median, _, metrics = bench.time_train(compiled, warmup=sizes.warmup,
                                        steps=sizes.steps)
  config, batch = bench.config, row["batch"]
  row.update(model=config.model.size, depth=config.model.depth or "size's",
             scan_method=config.model.scan_method,
             dtype=config.model.dtype, remat=config.model.remat,
             image=config.data.image_size,
             params_m=round(bench.num_params / 1e6, 2),
             step_ms=median * 1e3, images_per_s=batch / median,
             loss=float(metrics["loss"]),
             tflops_per_s=compiled.flops / median / 1e12,
             xla_peak_gib=round(compiled.peak_bytes / GIB, 3))
  if evaluate and time.time() + _EVAL_RESERVE_S > args.deadline:
    row["eval"] = f"not timed: under {_EVAL_RESERVE_S} s left in the job"
  elif evaluate:
    predict = bench.compile_predict()
    eval_s = bench.time_predict(predict, warmup=sizes.warmup, steps=sizes.steps)[0]
    row.update(eval_ms=eval_s * 1e3, eval_images_per_s=batch / eval_s)
  stats = jax.devices()[0].memory_stats() or {}
  row["peak_gib"] = (round(stats["peak_bytes_in_use"] / GIB, 3)
                     if "peak_bytes_in_use" in stats else None)
  return row


def _probed(name, mesh, args, sizes):
  """(Bench, compiled step, row figures) at the memory probe's pick.

  memory.probe's rule with its own parts (budget, candidates, measure):
  the largest halving batch whose compiled step fits the budget. Its
  confirming step is the warm-up here, on the executable the probe
  compiled (no second compile); a batch that still runs out of memory
  moves on to the next, as in the probe. The probe section runs
  memory.probe itself, through main.py.
  """
  config = row_config(name, 1, args, sizes)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  step = builder.jit_train_step(model, optimizer, config, mesh)
  state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                         jax.random.PRNGKey(0))
  plan, tried = memory.budget(config), []
  for size in memory.candidates(args.probe_max_batch, mesh.devices.size):
    executable, m = memory.measure(step, state, size, config, mesh, plan.bytes)
    tried.append(f"{size}: {m.total / GIB:.2f} GiB" + ("" if m.fits else " (no)"))
    if not m.fits:
      continue
    bench = common.Bench(row_config(name, size, args, sizes), mesh)
    compiled = common.analysed(executable, m.compile_s)
    try:
      bench.time_train(compiled, warmup=0, steps=1)
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" not in str(e):
        raise
      tried[-1] += " (OOM)"
      continue
    return bench, compiled, {
        "batch": size, "batch_from": "memory probe", "probe": ", ".join(tried),
        "probe_budget_gib": round(plan.bytes / GIB, 2),
        "compile_s": round(m.compile_s, 1)}
  raise RuntimeError(f"no batch fits {plan.bytes / GIB:.2f} GiB ({plan.source}): "
                     + ", ".join(tried))


# ---- the original PyTorch model ----


def original(job, args, sizes):
  if not args.original_path:
    raise Skip("no --original_path (a checkout of QJHWC/MambaIR-GPPNN) given")
  try:
    torch = compare_original.import_torch()
    create = compare_original.load_original(args.original_path)
  except compare_original.Unavailable as e:
    raise Skip(str(e)) from e
  cuda = torch.cuda.is_available()
  if not cuda and not args.smoke:
    raise Skip(f"torch {torch.__version__} sees no CUDA device")
  job.set(torch=torch.__version__, device="cuda" if cuda else "cpu",
          loss="L1 on the three outputs (benchmarks/compare_original.py)")
  job.row({"model": "original (PyTorch)"},
          functools.partial(_original_row, torch, create, cuda, args.batch, sizes))


def _original_row(torch, create, cuda, batch, sizes):
  """Halves the batch until the original fits (it may need more memory)."""
  while True:
    try:
      params, train_s, eval_s = compare_original.bench_original(
          torch, create, size="base", num_bands=4, image_size=sizes.image_size,
          batch_size=batch, warmup=sizes.warmup, steps=sizes.steps,
          device="cuda" if cuda else "cpu", amp=cuda)
      break
    except torch.cuda.OutOfMemoryError:
      if batch == 1:
        raise
      batch //= 2
      torch.cuda.empty_cache()
  peak = torch.cuda.max_memory_allocated() / GIB if cuda else None
  return {"batch": batch, "params_m": round(params / 1e6, 2),
          "precision": "fp16 autocast + GradScaler" if cuda else "float32",
          "train_step_ms": train_s * 1e3, "train_images_per_s": batch / train_s,
          "eval_ms": eval_s * 1e3, "eval_images_per_s": batch / eval_s,
          "peak_gib": peak}
