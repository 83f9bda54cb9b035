"""A reference CNN through every command: train, evaluate, predict, adapt
(PanNet at ratio 8: the one whose layers depend on the ratio)."""

import json
import os

import rasterio

from pansharp_jax import baselines, commands
from tests.data import fixtures
from tests.train import train_tiny


def test_pannet_trains_evaluates_predicts_and_adapts(tmp_path):
  workdir = str(tmp_path / "run")
  config = train_tiny.config(num_train_steps=2, eval_every=2, checkpoint_every=2,
                             log_every=2)
  config.model.name = "pannet"
  config.data.ratio = 8
  config.data.synthetic.num_test = 2
  config.eval_batch_size = 2
  commands.train(config, workdir)
  report = commands.evaluate(config, workdir, "test")
  assert report["images"] == 2 and set(report["mean"]) == {"model", *baselines.BASELINES}
  fixtures.geotiff_pair(str(tmp_path / "scene"), ms_hw=(8, 12), ratio=8)
  ms, pan = (str(tmp_path / "scene" / k / "scene.tif") for k in ("MS", "PAN"))
  commands.predict(config, workdir, ms, pan, str(tmp_path / "fused.tif"), progress=False)
  with rasterio.open(tmp_path / "fused.tif") as dst:
    assert (dst.height, dst.width, dst.count) == (64, 96, 4)
  config.adapt.steps, config.adapt.eval_tiles = 2, 2
  summary = commands.adapt(config, workdir, ms, pan, str(tmp_path / "adapted.tif"),
                           progress=False)
  with open(tmp_path / "adapted_metrics.json") as f:
    assert json.load(f)["adaptation"]["steps"] == summary["steps"] == 2
  assert os.path.isfile(tmp_path / "adapted.tif")
