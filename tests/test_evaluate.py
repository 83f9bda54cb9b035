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
from pansharp_jax.data import pipeline
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
  assert full_rows["GS"][1] == pytest.approx(expected, rel=1e-6)
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
  assert set(quick["model"][0]) == set(metrics.QUICK_METRICS)
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
