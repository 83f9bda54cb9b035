"""Training curves PNG: reading the log, ticks, label spreading, drawing."""

import json

import numpy as np
from PIL import Image

from pansharp_jax import curves

MEANS = {"model": {"psnr": 30.0, "ergas": 2.0},
         "EXP": {"psnr": 24.0, "ergas": 6.0},
         "GSA": {"psnr": 29.5, "ergas": 3.0},
         "MTF-GLP-FS": {"psnr": 29.52, "ergas": 2.99}}


def _write_log(path, steps=(10, 20, 30)):
  with open(path, "w") as f:
    for step in steps:
      f.write(json.dumps({"step": step, "split": "train", "loss": 1 / step}) + "\n")
    f.write(json.dumps({"step": 20, "split": "val", "psnr": 27.0, "ergas": 4.0}) + "\n")
    f.write(json.dumps({"step": 30, "split": "val", "psnr": 30.0, "ergas": 2.0}) + "\n")
    f.write('{"step": 40, "split": "tr')  # cut short by a stopped run


def test_read_metrics_by_split_skips_a_broken_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  _write_log(path)
  rows = curves.read_metrics(str(path))
  assert [r["step"] for r in rows["train"]] == [10, 20, 30]
  assert [r["psnr"] for r in rows["val"]] == [27.0, 30.0]
  assert curves.read_metrics(str(tmp_path / "missing.jsonl")) == {}


def test_nice_ticks():
  assert curves.nice_ticks(0, 100) == [0, 25, 50, 75, 100]
  assert curves.nice_ticks(27.1, 31.3) == [28, 29, 30, 31]
  ticks = curves.nice_ticks(0.061, 0.101)
  assert len(ticks) >= 3 and ticks[0] >= 0.061 and ticks[-1] <= 0.101


def test_spread_keeps_order_gap_and_bounds():
  placed = curves.spread([50, 51, 52, 200, 10], gap=14, low=0, high=100)
  assert all(0 <= p <= 100 for p in placed)
  order = np.argsort([50, 51, 52, 200, 10], kind="stable")
  assert np.all(np.diff(np.array(placed)[order]) >= 14 - 1e-9)
  assert curves.spread([20, 60], gap=14, low=0, high=100) == [20, 60]


def test_write_curves_draws_model_and_baselines(tmp_path):
  _write_log(tmp_path / "metrics.jsonl")
  path = curves.write_curves(str(tmp_path / "eval" / "curves.png"),
                             str(tmp_path / "metrics.jsonl"), MEANS)
  image = np.asarray(Image.open(path).convert("RGB")).astype(int)
  width, height = curves._PANEL_SIZE
  assert image.shape == (height + 24, 3 * width, 3)
  psnr_panel, loss_panel = image[:, :width], image[:, 2 * width:]
  # The model's blue and each baseline's colour are on the metric panels;
  # the loss panel has the model only.
  for colour in (curves._MODEL_COLOUR,) + curves._LINE_COLOURS[:3]:
    assert (np.abs(psnr_panel - colour).sum(-1) < 30).sum() > 100, colour
  assert (np.abs(loss_panel - curves._MODEL_COLOUR).sum(-1) < 30).sum() > 100
  assert (np.abs(loss_panel - curves._LINE_COLOURS[0]).sum(-1) < 30).sum() == 0


def test_empty_log_still_draws(tmp_path):
  path = curves.write_curves(str(tmp_path / "curves.png"),
                             str(tmp_path / "none.jsonl"), MEANS)
  assert Image.open(path).size == curves.render({}, {}).size


def _blue_line_rows(panel):
  """Pixel rows of a panel where the model's blue spans most of the box."""
  width = curves._PANEL_SIZE[0] - curves._MARGIN[0] - curves._MARGIN[2]
  blue = np.abs(panel - curves._MODEL_COLOUR).sum(-1) < 30
  return np.flatnonzero(blue.sum(1) > 0.9 * width)


def test_another_split_draws_the_model_as_a_line_beside_the_validation_curve(tmp_path):
  """evaluate --split=test: the curve stays the validation one; the model's
  test figure is a line like the baselines', never a point of the curve."""
  _write_log(tmp_path / "metrics.jsonl")
  test_means = {**MEANS, "model": {"psnr": 25.0, "ergas": 5.0}}
  images = {split: np.asarray(Image.open(curves.write_curves(
      str(tmp_path / f"{split}.png"), str(tmp_path / "metrics.jsonl"),
      test_means, split)).convert("RGB")).astype(int)
            for split in ("val", "test")}
  width = curves._PANEL_SIZE[0]
  assert len(_blue_line_rows(images["val"][:, :width])) == 0
  rows = _blue_line_rows(images["test"][:, :width])
  # One line, 25 dB: below GSA's 29.5 and above EXP's 24 in pixel rows.
  assert 0 < len(rows) <= 2
  gsa = np.flatnonzero((np.abs(images["test"][:, :width] - curves._LINE_COLOURS[1])
                        .sum(-1) < 30).sum(1) > 200)
  exp = np.flatnonzero((np.abs(images["test"][:, :width] - curves._LINE_COLOURS[0])
                        .sum(-1) < 30).sum(1) > 200)
  assert gsa.max() < rows.min() and rows.max() < exp.min()
