"""Reduced-resolution evaluation of a model against GT, beside the EXP baseline.

EXP is the interpolated MS (`lms`) every source provides. Metrics are computed
in sensor units (DN), so `data_range` is the source's `max_value`.
"""

import json
import os

import numpy as np

from pansharp_jax import metrics


def _image_metrics(ref, x, data_range):
  return {"psnr": metrics.psnr(ref, x, data_range),
          "ssim": metrics.ssim(ref, x, data_range)}


def evaluate_source(predict, source, batches) -> dict[str, list[dict]]:
  """Per-image metrics for the model (`predict(batch) -> HR batch`) and EXP."""
  rows = {"model": [], "EXP": []}
  scale = source.max_value
  for batch in batches:
    fused = np.asarray(predict(batch))
    for i in range(fused.shape[0]):
      ref = batch["gt"][i] * scale
      rows["model"].append(_image_metrics(ref, fused[i] * scale, scale))
      rows["EXP"].append(_image_metrics(ref, batch["lms"][i] * scale, scale))
  return rows


def summarize(rows: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
  """Mean of every metric per method."""
  return {method: {k: float(np.mean([r[k] for r in per_image]))
                   for k in per_image[0]}
          for method, per_image in rows.items() if per_image}


def write_report(rows, out_dir: str, extra: dict | None = None) -> dict:
  """Writes `out_dir/report.json` (per-image rows + means) and returns it."""
  os.makedirs(out_dir, exist_ok=True)
  report = {"mean": summarize(rows), "per_image": rows, **(extra or {})}
  with open(os.path.join(out_dir, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
  return report


def evaluate_workdir(config, workdir: str, split: str = "val") -> dict:
  """Evaluates the EMA weights of the newest checkpoint in `workdir` on `split`."""
  # Imported here: the train package imports this module for in-loop evals.
  from pansharp_jax.data import pipeline, sources
  from pansharp_jax.train import builder, checkpoint, parallel

  mesh = parallel.make_mesh()
  model, _, _, state = builder.build(config, mesh)
  manager = checkpoint.make_manager(workdir, config)
  state = checkpoint.restore_latest(manager, checkpoint.abstract_like(state), None)
  manager.close()
  if state is None:
    raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint to evaluate")
  predict = builder.make_predict(model)
  source = sources.make_source(config.data, split)
  rows = evaluate_source(
      lambda b: predict(state.ema_params, state.model_state, b), source,
      pipeline.eval_batches(source, int(config.eval_batch_size)))
  return write_report(rows, os.path.join(workdir, "eval"),
                      {"step": int(state.step), "split": split})
