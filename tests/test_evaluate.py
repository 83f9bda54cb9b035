"""Evaluation on synthetic Wald data: baselines' ordering, reports, errors."""

import json
import os

import numpy as np
import pytest

from configs import default
from pansharp_jax import baselines
from pansharp_jax import config_checks, errors
from pansharp_jax import evaluate
from pansharp_jax import metrics
from pansharp_jax.data import pipeline, wald
from pansharp_jax.data.synthetic import SyntheticSource

NUM_IMAGES = 5
METHODS = ["model", *baselines.BASELINES]
METRICS = ["psnr", "ssim", "sam", "ergas", "q", "q2n", "scc"]


@pytest.fixture(scope="module")
def config():
  config = default.get_config()
  config.data.synthetic.scene_size = 64
  config.data.synthetic.num_val = NUM_IMAGES
  config.eval_batch_size = 2
  return config


@pytest.fixture(scope="module")
def source(config):
  return SyntheticSource(config.data, "val")


def fake_model(batch):
  """Most of the way from the interpolated MS to GT: a decent 'model'."""
  return batch["lms"] + 0.8 * (batch["gt"] - batch["lms"])


@pytest.fixture(scope="module")
def full_rows(source):
  return evaluate.evaluate_source(fake_model, source,
                                  pipeline.eval_batches(source, 2), full=True)


def _mean(rows, method, metric):
  return float(np.mean([r[metric] for r in rows[method]]))


@pytest.mark.parametrize("method", ["MTF-GLP-FS", "GS"])
def test_pansharpening_beats_exp(full_rows, method):
  """Issue 5 acceptance: MTF-GLP and GS beat EXP on ERGAS and Q2n."""
  assert _mean(full_rows, method, "ergas") < _mean(full_rows, "EXP", "ergas")
  assert _mean(full_rows, method, "q2n") > _mean(full_rows, "EXP", "q2n")


def test_rows_match_the_metrics_in_sensor_units(full_rows, source):
  sample = source[1]
  dn = {k: v.astype(np.float64) * source.max_value for k, v in sample.items()}
  expected = metrics.evaluate_reduced(
      dn["gt"], baselines.gs(dn["ms"], dn["pan"], ratio=4, sensor="QB"),
      ratio=4, data_range=2047)
  row = dict(full_rows["GS"][1])
  assert row.pop("name") == "1 (64x64 px)"  # index and the size it was scored at
  assert row == pytest.approx(expected, rel=1e-6)
  assert list(full_rows) == METHODS
  assert all(len(r) == NUM_IMAGES for r in full_rows.values())


def test_report_has_every_method_metric_and_quicklooks(full_rows, source,
                                                       tmp_path):
  out = str(tmp_path / "eval")
  written = evaluate.write_report(full_rows, out, {"step": 3})
  with open(os.path.join(out, "report.json")) as f:
    report = json.load(f)
  assert report == written and report["step"] == 3
  assert list(report["mean"]) == METHODS
  for method in METHODS:
    assert list(report["mean"][method]) == METRICS
    assert report["summary"][method]["q2n"]["n"] == NUM_IMAGES
    assert report["summary"][method]["q2n"]["std"] > 0
    assert len(report["per_image"][method]) == NUM_IMAGES
  with open(os.path.join(out, "report.md")) as f:
    markdown = f.read()
  for method in METHODS:
    assert f"| {method} |" in markdown
  assert "Q2n ↑" in markdown and "ERGAS ↓" in markdown

  ql_dir = str(tmp_path / "ql")
  evaluate.evaluate_source(fake_model, source, pipeline.eval_batches(source, 2),
                           full=True, quicklook_dir=ql_dir)
  assert sorted(os.listdir(ql_dir)) == [f"{i:04d}.png" for i in range(4)]


def test_quick_rows_are_the_models_and_exps_cheap_metrics(full_rows, source):
  quick = evaluate.evaluate_source(fake_model, source,
                                   pipeline.eval_batches(source, 2))
  assert list(quick) == ["model", "EXP"]
  assert set(quick["model"][0]) == {"name", *metrics.QUICK_METRICS}
  means = evaluate.summarize(quick)
  assert means["model"]["psnr"] == pytest.approx(
      _mean(full_rows, "model", "psnr"), rel=1e-9)
  assert means["model"]["psnr"] > means["EXP"]["psnr"]


@pytest.mark.parametrize("layout", ["missing", "empty", "no_step"])
def test_evaluate_workdir_without_checkpoint_fails_fast(config, tmp_path,
                                                        monkeypatch, layout):
  from pansharp_jax import commands
  from pansharp_jax.train import builder
  monkeypatch.setattr(builder, "make_model_and_optimizer",
                      lambda *a: pytest.fail("model built"))
  workdir = tmp_path / "run"
  if layout != "missing":
    (workdir / "checkpoints").mkdir(parents=True)
  if layout == "no_step":
    (workdir / "checkpoints" / "tmp_save").mkdir()
  with pytest.raises(errors.CheckpointError) as info:
    commands.evaluate(config, str(workdir))
  assert str(info.value) == f"{workdir}/checkpoints: no checkpoint to evaluate (train first)"


def test_best_metric_must_be_a_validation_metric():
  config = default.get_config()
  config.best_metric = "q2n"
  with pytest.raises(errors.ConfigError,
                     match=r"^config\.best_metric: .*psnr, ssim, sam, ergas"):
    config_checks.validate(config)
  config.best_metric, config.best_mode = "sam", "down"
  with pytest.raises(errors.ConfigError, match=r"^config\.best_mode: "):
    config_checks.validate(config)


# ---- full-resolution protocol: hand-computable cases ----

def _block_uiqi(x, y, block=32):
  """Mean UIQI over distinct blocks, straight from Wang & Bovik's formula
  (population moments), for non-flat blocks."""
  values = []
  for r in range(0, x.shape[0], block):
    for c in range(0, x.shape[1], block):
      a, b = x[r:r + block, c:c + block].ravel(), y[r:r + block, c:c + block].ravel()
      ma, mb = a.mean(), b.mean()
      cov = ((a - ma) * (b - mb)).mean()
      values.append(4 * cov * ma * mb / ((a.var() + b.var()) * (ma**2 + mb**2)))
  return float(np.mean(values))


def _full_scene(seed=0, size=64, bands=3):
  rng = np.random.default_rng(seed)
  pan = 500 + 1000 * rng.random((size, size))
  ms = 300 + 1200 * rng.random((size // 4, size // 4, bands))
  return ms, pan


def test_full_resolution_identity_case():
  """MS bands that are all the PAN degraded as D_s degrades it, fused = PAN
  in every band: no spectral and no spatial distortion, QNR 1."""
  _, pan = _full_scene()
  ms = np.repeat(wald.bicubic_downsample(pan, 4)[..., None], 3, axis=-1)
  fused = np.repeat(pan[..., None], 3, axis=-1)
  scores = evaluate.score_sample_full(ms, pan, fused, sensor="generic")["model"]
  assert scores["d_lambda"] == pytest.approx(0.0, abs=1e-9)
  assert scores["d_s"] == pytest.approx(0.0, abs=1e-9)
  assert scores["qnr"] == pytest.approx(1.0, abs=1e-9)


def test_full_resolution_ms_upsample_and_pan_copy():
  ms, pan = _full_scene(1)
  ms_up = wald.interp23tap(ms, 4)
  pan_lp = wald.interp23tap(wald.bicubic_downsample(pan, 4), 4)
  q_ms_pan_lp = [_block_uiqi(ms_up[..., b], pan_lp) for b in range(3)]
  pairs = [(0, 1), (0, 2), (1, 2)]
  q_ms_bands = [_block_uiqi(ms_up[..., i], ms_up[..., j]) for i, j in pairs]

  # The upsampled MS itself: its bands relate as the MS bands do (D_lambda
  # 0), and its D_s compares each band's Q with the PAN at both scales.
  up = evaluate.score_sample_full(ms, pan, ms_up, sensor="generic")["model"]
  q_up_pan = [_block_uiqi(ms_up[..., b], pan) for b in range(3)]
  assert up["d_lambda"] == pytest.approx(0.0, abs=1e-9)
  assert up["d_s"] == pytest.approx(
      np.mean(np.abs(np.subtract(q_up_pan, q_ms_pan_lp))), abs=1e-9)
  assert up["qnr"] == pytest.approx((1 - up["d_lambda"]) * (1 - up["d_s"]))

  # The PAN copied into every band: inter-band Q 1, Q with the PAN 1.
  copy = evaluate.score_sample_full(
      ms, pan, np.repeat(pan[..., None], 3, -1), sensor="generic")["model"]
  assert copy["d_lambda"] == pytest.approx(np.mean(np.abs(1 - np.array(q_ms_bands))), abs=1e-9)
  assert copy["d_s"] == pytest.approx(np.mean(np.abs(1 - np.array(q_ms_pan_lp))), abs=1e-9)
  assert copy["hqnr"] == pytest.approx((1 - copy["d_lambda_khan"]) * (1 - copy["d_s"]))


def test_full_resolution_needs_one_whole_block():
  ms, pan = _full_scene(size=16)
  with pytest.raises(errors.DataError, match="at least 32 x 32 PAN px"):
    evaluate.score_sample_full(ms, pan, wald.interp23tap(ms, 4), sensor="generic")


class _Images(list):
  name = "images"


def _sample(pan_side, ms_side, gt=True):
  sample = {"ms": np.zeros((ms_side, ms_side, 4), np.float32),
            "pan": np.zeros((pan_side, pan_side, 1), np.float32)}
  if gt:
    sample["gt"] = np.zeros((pan_side, pan_side, 4), np.float32)
  return sample


def test_check_scorable_names_the_window_the_ratio_and_the_protocol():
  assert evaluate.check_scorable(_Images([_sample(32, 8)]), "val split", 4) == "reduced"
  assert evaluate.check_scorable(_Images([_sample(96, 12, gt=False)]), "test split",
                                 8) == "full"
  with pytest.raises(errors.DataError, match=r"^val split: images of 28x28 px are smaller "
                                             r"than the 32x32 px window"):
    evaluate.check_scorable(_Images([_sample(28, 7)]), "val split", 4)
  # Full resolution at ratio 6 needs whole 32 px blocks of whole MS pixels:
  # lcm(32, 6) = 96 px.
  assert evaluate.check_scorable(_Images([_sample(96, 16, gt=False)]), "t", 6) == "full"
  with pytest.raises(errors.DataError, match="window of the full-resolution"):
    evaluate.check_scorable(_Images([_sample(72, 12, gt=False)]), "t", 6)
  with pytest.raises(errors.DataError, match=r"^val split: PAN of 32 px is not "
                                             r"config.data.ratio=2 x the MS of 8 px$"):
    evaluate.check_scorable(_Images([_sample(32, 8)]), "val split", 2)
