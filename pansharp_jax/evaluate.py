"""Scoring: the model and the classical baselines, under either protocol.

Sources and a batch function in, per-image rows and reports out; restoring a
model is `inference.py`'s job and the `--mode=evaluate` command is in
`commands.py`.

Each sample's `ms` and `pan` (and `gt`) in [0, 1] go back to sensor units
(DN, x `source.max_value`). The baselines (`baselines.BASELINES`: EXP, BT-H,
GS, GSA, MTF-GLP-FS, MTF-GLP-HPM) fuse each sample's own `ms` and `pan` with
the sensor's MTF filters. Two protocols:
* reduced resolution (samples with `gt`, made by Wald's protocol):
  `metrics.evaluate_reduced` against GT with `data_range = max_value`;
* full resolution (no `gt`: the original MS and PAN): the no-reference
  `metrics.evaluate_full` (D_lambda, D_s, QNR, Khan's D_lambda, HQNR).
Images are scored at their own size (cropped, if need be, to what the model
takes: PAN sides a multiple of 4 and of the ratio); each row's name says
the size. Reports are written by `report.write_report`.

Two depths for the reduced protocol, because the train loop validates often:
* quick (`full=False`, the default): the model and EXP, `metrics.QUICK_METRICS`;
  the periodic validation during training.
* full: every baseline, every metric and quicklook PNGs of the first
  samples; the end-of-training report and `--mode=evaluate`.
"""

import math
import os

import numpy as np

from pansharp_jax import baselines
from pansharp_jax import metrics
from pansharp_jax import quicklook
from pansharp_jax import report as report_lib
from pansharp_jax.errors import DataError, EvaluationError

MODEL = "model"
NUM_QUICKLOOKS = 4
# The largest window of the indices: Q's sliding window and the blocks of
# Q2n and of the full-resolution indices (evaluate_reduced's and
# score_sample_full's default block).
WINDOW = 32
PROTOCOLS = {"reduced": "reduced resolution (Wald's protocol, against GT)",
             "full": "full resolution (no reference: D_lambda, D_s, QNR, HQNR)"}


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


def score_sample_full(ms, pan, fused, *, sensor: str,
                      block: int = 32) -> dict[str, dict[str, float]]:
  """{method: no-reference metrics} of one sample without GT (DN units).

  The indices work on distinct block x block tiles, so the images are
  cropped to a whole number of blocks (top-left) first.
  """
  ratio = pan.shape[0] // ms.shape[0]
  outputs = {} if fused is None else {MODEL: fused}
  outputs.update({name: fn(ms, pan, ratio=ratio, sensor=sensor)
                  for name, fn in baselines.BASELINES.items()})
  # Whole blocks at PAN scale that are also whole MS pixels.
  unit = block * ratio // np.gcd(block, ratio)
  h, w = pan.shape[0] // unit * unit, pan.shape[1] // unit * unit
  if not (h and w):
    raise DataError(f"full-resolution metrics need images of at least {unit} x "
                    f"{unit} PAN px, got {pan.shape[0]} x {pan.shape[1]}")
  return {name: metrics.evaluate_full(x[:h, :w], ms[:h // ratio, :w // ratio],
                                      pan[:h, :w], ratio=ratio, sensor=sensor,
                                      block=block)
          for name, x in outputs.items()}


def _model_sized(batch):
  """The batch cropped to PAN sides that are multiples of 4 and of the
  ratio (what the model takes); unchanged when they already are."""
  ratio = batch["pan"].shape[1] // batch["ms"].shape[1]
  unit = 4 * ratio // np.gcd(4, ratio)
  h, w = (n // unit * unit for n in batch["pan"].shape[1:3])
  if (h, w) == batch["pan"].shape[1:3]:
    return batch
  return {k: v[:, :h // ratio, :w // ratio] if k == "ms" else v[:, :h, :w]
          for k, v in batch.items()}


def protocol_of(batch, protocol: str, where: str) -> str:
  """'reduced' or 'full' for a batch: `protocol`, or by whether it has GT."""
  if protocol == "auto":
    return "reduced" if "gt" in batch else "full"
  if protocol == "reduced" and "gt" not in batch:
    raise DataError(f"{where}: no gt in this split, so reduced-resolution "
                    "metrics cannot be computed (use --protocol=full or auto)")
  return protocol


def check_scorable(source, where: str, ratio: int, protocol: str = "auto") -> str:
  """The split's protocol ('reduced' or 'full'), once its first image is
  known to be scorable: PAN `ratio` x the MS, and large enough for the
  indices' windows. Called before training or restoring, so a split that
  cannot be scored fails before any work is done."""
  sample = source[0]
  kind = protocol_of(sample, protocol, where)
  (pan_h, pan_w), ms_h = sample["pan"].shape[:2], sample["ms"].shape[0]
  if pan_h != ratio * ms_h:
    raise DataError(f"{where}: PAN of {pan_h} px is not config.data.ratio={ratio} x "
                    f"the MS of {ms_h} px")
  unit = 4 * ratio // math.gcd(4, ratio)  # what `_model_sized` crops to
  side = min(pan_h, pan_w) // unit * unit
  need = WINDOW if kind == "reduced" else math.lcm(WINDOW, ratio)
  if side < need:
    raise DataError(
        f"{where}: images of {pan_h}x{pan_w} px are smaller than the {need}x{need} px "
        f"window of the {kind}-resolution indices (Q, Q2n); make them at least {need} px "
        "(config.data.image_size for GeoTIFF tiles, data.synthetic.scene_size)")
  return kind


def failed(what: str, error: Exception, saved: str) -> EvaluationError:
  """One line for an error raised while scoring `what` ('validation at step
  N'), saying what was kept."""
  detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
  return EvaluationError(f"{what} failed ({type(error).__name__}"
                         f"{': ' + detail if detail else ''}); {saved}")


def evaluate_source(predict, source, batches, *, full: bool = False,
                    sensor: str | None = None, quicklook_dir: str | None = None,
                    num_quicklooks: int = NUM_QUICKLOOKS,
                    protocol: str = "auto") -> dict[str, list[dict]]:
  """Per-image rows of the model (`predict(batch) -> HR batch`) and baselines.

  Args:
    predict: the model, NHWC batch dict in [0, 1] -> fused NHWC in [0, 1].
    source: the split's data source (`max_value`, optional `sensor`).
    batches: iterable of batch dicts over the source, in order.
    full: every baseline and metric (else the model, EXP, the quick metrics).
    sensor: MTF filters of the baselines; default `source.sensor` or generic.
    quicklook_dir: where to write PNG panels of the first samples (full only).
    num_quicklooks: how many.
    protocol: 'reduced', 'full', or 'auto' (reduced where samples have gt).

  Returns:
    {method: [metric dicts, each named by index and size]}, "model" first.
  """
  scale = float(source.max_value)
  sensor = sensor or getattr(source, "sensor", None) or "generic"
  where = getattr(source, "name", "source")
  rows, seen = {}, 0
  for batch in batches:
    given = batch["pan"].shape[1:3]
    batch = _model_sized(batch)
    kind = protocol_of(batch, protocol, where)
    fused = np.asarray(predict(batch))
    size = f"{fused.shape[1]}x{fused.shape[2]} px"
    if fused.shape[1:3] != given:
      size += f", cropped from {given[0]}x{given[1]}"
    for i in range(fused.shape[0]):
      ms, pan = (np.asarray(batch[k][i], np.float64) * scale for k in ("ms", "pan"))
      if kind == "full":
        scores = score_sample_full(ms, pan[..., 0], fused[i] * scale, sensor=sensor)
      else:
        gt = np.asarray(batch["gt"][i], np.float64) * scale
        scores = score_sample(gt, ms, pan[..., 0], fused[i] * scale,
                              data_range=scale, sensor=sensor, full=full)
      for method, values in scores.items():
        rows.setdefault(method, []).append({"name": f"{seen} ({size})", **values})
      if full and quicklook_dir and seen < num_quicklooks:
        _write_quicklook(quicklook_dir, seen, batch, i, fused[i])
      seen += 1
  return rows


def _write_quicklook(out_dir, index, batch, i, fused):
  """MS | PAN | fused | GT | |error| panel of sample `index`."""
  quicklook.write_quicklook(
      os.path.join(out_dir, f"{index:04d}.png"), np.asarray(batch["lms"][i]),
      np.asarray(batch["pan"][i]), np.clip(fused, 0, 1),
      np.asarray(batch["gt"][i]) if "gt" in batch else None)


def coverage_of(source) -> dict:
  """{"coverage": {split: {tiles, scene_fraction}}} for a report, from a
  source that cuts tiles from scenes (GeoTIFF); {} for the others."""
  coverage = getattr(source, "coverage", None)
  return {"coverage": coverage} if coverage else {}


def summarize(rows) -> dict[str, dict[str, float]]:
  """{method: {metric: mean}} (the full statistics: `report.summarize`)."""
  return {method: {k: s["mean"] for k, s in report_lib.summarize(per).items()}
          for method, per in rows.items() if per}


def write_report(rows, out_dir: str, extra: dict | None = None) -> dict:
  """Writes `out_dir/report.{json,md}`; the JSON's "mean" holds
  {method: {metric: mean}}."""
  return report_lib.write_report(rows, out_dir, extra=extra)
