"""commands.py: evaluation of every source's test split under both protocols,
and scene adaptation; the tiny stand-in model of train_tiny.py is trained for
a few steps first (tests/train/conftest.py swaps it in)."""

import json
import os
import shutil

import numpy as np
import pytest
import train_tiny

from pansharp_jax import baselines, commands, errors
from pansharp_jax.data import sources
from tests.data import fixtures

FULL_METRICS = ("d_lambda", "d_s", "qnr", "hqnr")


def _config(**data):
  config = train_tiny.config()
  config.eval_batch_size = 2
  for key, value in data.items():
    config.data[key] = value
  return config


def _report(workdir, split):
  with open(os.path.join(workdir, "eval", split, "report.json")) as f:
    return json.load(f)


def _synthetic(tmp_path):
  config = _config()
  config.data.synthetic.num_test = 3
  return config, 3, "32x32 px"


def _photo(tmp_path):
  root = str(tmp_path / "photo")
  fixtures.photo_folder(root, [f"t{i}" for i in range(4)])
  # Test images larger than the training crops (32 px): scored whole.
  fixtures.photo_folder(root, ["x", "y", "z"], folder="testdateset", size=48)
  return _config(source="photo", root=root), 3, "48x48 px"


def _h5(tmp_path):
  path = str(tmp_path / "test.h5")
  fixtures.pancollection_file(path, count=2, size=64)
  return _config(source="h5", test_file=path), 2, "64x64 px"


@pytest.mark.parametrize("make", [_synthetic, _photo, _h5])
def test_evaluate_test_split_scores_exactly_the_test_images(workdir, tmp_path, make):
  config, count, size = make(tmp_path)
  report = commands.evaluate(config, workdir, "test")
  assert report == _report(workdir, "test")
  assert report["split"] == "test" and report["images"] == count
  assert report["protocol"].startswith("reduced resolution")
  assert set(report["mean"]) == {"model", *baselines.BASELINES}
  names = [row["name"] for row in report["per_image"]["model"]]
  assert names == [f"{i} ({size})" for i in range(count)]
  source = sources.make_source(config.data, "test")
  assert len(source) == count
  looks = os.listdir(os.path.join(workdir, "eval", "test", "quicklooks"))
  assert sorted(looks) == [f"{i:04d}.png" for i in range(min(count, 4))]


def test_h5_without_gt_gives_a_full_resolution_report(workdir, tmp_path):
  path = str(tmp_path / "full.h5")
  fixtures.pancollection_file(path, count=2, size=64, keys=("ms", "lms", "pan"))
  config = _config(source="h5", test_file=path)
  report = commands.evaluate(config, workdir, "test")
  assert report["protocol"].startswith("full resolution")
  assert set(report["mean"]) == {"model", *baselines.BASELINES}
  for method, means in report["mean"].items():
    for name in FULL_METRICS:
      assert 0.0 <= means[name] <= 1.0, (method, name, means[name])
  with pytest.raises(errors.DataError, match="no gt in this split"):
    commands.evaluate(config, workdir, "test", protocol="reduced")


def test_adapt_raises_qnr_on_the_scene(workdir, tmp_path):
  """A 256 x 256 PAN px scene cut from a synthetic sample (its MS and PAN at
  their native resolutions, no GT), adapted for 30 steps."""
  config = _config()
  config.data.synthetic.scene_size = 256
  sample = sources.make_source(config.data, "test")[0]
  to_dn = lambda a: np.round(a * 2047).astype(np.uint16)
  root = str(tmp_path / "scene")
  fixtures.geotiff(os.path.join(root, "ms.tif"), to_dn(sample["ms"]), pixel=2.0)
  fixtures.geotiff(os.path.join(root, "pan.tif"), to_dn(sample["pan"]), pixel=0.5)
  config.adapt.steps, config.adapt.lr, config.adapt.crop_size = 30, 1e-3, 64
  config.adapt.spatial_weight = 0.1
  config.adapt.eval_tiles = 4
  out = str(tmp_path / "fused.tif")
  summary = commands.adapt(config, workdir, os.path.join(root, "ms.tif"),
                           os.path.join(root, "pan.tif"), out, progress=False)
  with open(str(tmp_path / "fused_metrics.json")) as f:
    scores = json.load(f)
  assert scores["adaptation"] == summary  # beside the whole scene's indices
  assert 0 <= scores["model"]["qnr"] <= 1
  assert summary["tiles"] == 4 and summary["steps"] == 30
  assert summary["last_loss"]["loss"] < summary["first_loss"]["loss"]
  assert summary["after"]["qnr"] > summary["before"]["qnr"]
  assert os.path.isfile(out) and os.path.isfile(str(tmp_path / "fused_quicklook.png"))


@pytest.mark.parametrize("ratio", [2, 8])
def test_other_ratios_train_evaluate_and_predict(tmp_path, ratio):
  workdir = str(tmp_path / "run")
  config = train_tiny.config(num_train_steps=2, eval_every=2, checkpoint_every=2,
                             log_every=2)
  config.data.ratio = ratio
  config.data.synthetic.num_test = 2
  config.eval_batch_size = 2
  commands.train(config, workdir)
  report = commands.evaluate(config, workdir, "test")
  assert report["ratio"] == ratio and report["images"] == 2
  assert set(report["mean"]) == {"model", *baselines.BASELINES}
  fixtures.geotiff_pair(str(tmp_path / "scene"), ms_hw=(64 // ratio, 96 // ratio),
                        ratio=ratio)
  out = str(tmp_path / "fused.tif")
  commands.predict(config, workdir, str(tmp_path / "scene" / "MS" / "scene.tif"),
                   str(tmp_path / "scene" / "PAN" / "scene.tif"), out, progress=False)
  import rasterio
  with rasterio.open(out) as dst:
    assert (dst.height, dst.width, dst.count) == (64, 96, 4)


def test_an_error_while_evaluating_is_one_line_and_writes_no_report(workdir, tmp_path,
                                                                    monkeypatch):
  run = str(tmp_path / "run")
  shutil.copytree(workdir, run)
  shutil.rmtree(os.path.join(run, "eval", "test"), ignore_errors=True)  # other tests' report
  steps = sorted(os.listdir(os.path.join(run, "checkpoints")))

  def crash(*args, **kwargs):
    raise FloatingPointError("overflow in q2n\nmore detail")

  monkeypatch.setattr(commands.evaluate_lib, "evaluate_source", crash)
  config = _config()
  config.data.synthetic.num_test = 2
  with pytest.raises(errors.EvaluationError) as e:
    commands.evaluate(config, run, "test")
  assert str(e.value) == ("evaluating the test split failed (FloatingPointError: overflow "
                          "in q2n); no report written; the checkpoints are unchanged")
  assert not os.path.exists(os.path.join(run, "eval", "test", "report.json"))
  assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == steps
