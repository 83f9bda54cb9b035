"""Reduced-resolution scoring: the model and the classical baselines vs GT.

Sources and a batch function in, per-image rows and reports out; restoring a
model is `inference.py`'s job and the `--mode=evaluate` command is in
`commands.py`.

Each sample's `gt`, `ms` and `pan` (in [0, 1]) go back to sensor units (DN,
x `source.max_value`) and every method is scored by
`metrics.evaluate_reduced` with `data_range = max_value`. The baselines
(`baselines.BASELINES`: EXP, BT-H, GS, GSA, MTF-GLP-FS, MTF-GLP-HPM) fuse each
sample's own `ms` and `pan` with the sensor's MTF filters. Reports are
written by `report.write_report` (JSON + Markdown, per-image rows, mean ± std).

Two depths, because the train loop validates often:
* quick (`full=False`, the default): the model and EXP, `metrics.QUICK_METRICS`;
  the periodic validation during training.
* full: every baseline, every reduced-resolution metric and quicklook PNGs
  of the first samples; the end-of-training report and `--mode=evaluate`.
"""

import os

import numpy as np

from pansharp_jax import baselines
from pansharp_jax import metrics
from pansharp_jax import quicklook
from pansharp_jax import report as report_lib

MODEL = "model"
NUM_QUICKLOOKS = 4


def _quick_metrics(ref, x, ratio, data_range):
  return {"psnr": metrics.psnr(ref, x, data_range),
          "ssim": metrics.ssim(ref, x, data_range),
          "sam": metrics.sam(ref, x),
          "ergas": metrics.ergas(ref, x, ratio)}


def score_sample(gt, ms, pan, fused, *, data_range: float, sensor: str,
                 full: bool = True) -> dict[str, dict[str, float]]:
  """{method: metrics} of one sample; images in sensor units (DN).

  `fused` is the model's output (None: baselines only). Quick scoring
  (`full=False`) has EXP as the only baseline and `metrics.QUICK_METRICS`.
  """
  ratio = pan.shape[0] // ms.shape[0]
  methods = dict(baselines.BASELINES) if full else {"EXP": baselines.exp}
  outputs = {} if fused is None else {MODEL: fused}
  outputs.update({name: fn(ms, pan, ratio=ratio, sensor=sensor)
                  for name, fn in methods.items()})
  if full:
    return {name: metrics.evaluate_reduced(gt, x, ratio=ratio,
                                           data_range=data_range)
            for name, x in outputs.items()}
  return {name: _quick_metrics(gt.astype(np.float64), x, ratio, data_range)
          for name, x in outputs.items()}


def evaluate_source(predict, source, batches, *, full: bool = False,
                    sensor: str | None = None, quicklook_dir: str | None = None,
                    num_quicklooks: int = NUM_QUICKLOOKS
                    ) -> dict[str, list[dict]]:
  """Per-image rows of the model (`predict(batch) -> HR batch`) and baselines.

  Args:
    predict: the model, NHWC batch dict in [0, 1] -> fused NHWC in [0, 1].
    source: the split's data source (`max_value`, optional `sensor`).
    batches: iterable of batch dicts over the source, in order.
    full: every baseline and metric (else the model, EXP, the quick metrics).
    sensor: MTF filters of the baselines; default `source.sensor` or generic.
    quicklook_dir: where to write PNG panels of the first samples (full only).
    num_quicklooks: how many.

  Returns:
    {method: [metric dicts]}, "model" first.
  """
  scale = float(source.max_value)
  sensor = sensor or getattr(source, "sensor", None) or "generic"
  rows, seen = {}, 0
  for batch in batches:
    fused = np.asarray(predict(batch))
    for i in range(fused.shape[0]):
      gt, ms, pan = (np.asarray(batch[k][i], np.float64) * scale
                     for k in ("gt", "ms", "pan"))
      scores = score_sample(gt, ms, pan[..., 0], fused[i] * scale,
                            data_range=scale, sensor=sensor, full=full)
      for method, values in scores.items():
        rows.setdefault(method, []).append(values)
      if full and quicklook_dir and seen < num_quicklooks:
        _write_quicklook(quicklook_dir, seen, batch, i, fused[i])
      seen += 1
  return rows


def _write_quicklook(out_dir, index, batch, i, fused):
  """MS | PAN | fused | GT | |error| panel of sample `index`."""
  quicklook.write_quicklook(
      os.path.join(out_dir, f"{index:04d}.png"), np.asarray(batch["lms"][i]),
      np.asarray(batch["pan"][i]), np.clip(fused, 0, 1),
      np.asarray(batch["gt"][i]))


def summarize(rows) -> dict[str, dict[str, float]]:
  """{method: {metric: mean}} (the full statistics: `report.summarize`)."""
  return {method: {k: s["mean"] for k, s in report_lib.summarize(per).items()}
          for method, per in rows.items() if per}


def write_report(rows, out_dir: str, extra: dict | None = None) -> dict:
  """Writes `out_dir/report.{json,md}`; the JSON's "mean" holds
  {method: {metric: mean}}."""
  return report_lib.write_report(rows, out_dir, extra=extra)
