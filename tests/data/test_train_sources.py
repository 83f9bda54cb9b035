"""Each file-backed source through the real training loop, and bad data that
fails before the model is compiled.

Training uses the stand-in model of tests/train/train_tiny.py: these tests are
about the data path (source -> pipeline -> step -> checkpoint -> eval
report), not the network, and the full model takes minutes to compile on a
CPU. All three sources give 32 px, 4-band samples, so every run builds the
same programs, and the suite's persistent compilation cache (tests/conftest.py)
lets only the first one compile them.
"""

import json
import math
import os

import h5py
import numpy as np
import pytest

from pansharp_jax.data import sources
from pansharp_jax.errors import DataError
from pansharp_jax.models import registry
from pansharp_jax.train import builder, loop
from tests.data import fixtures
from tests.train import train_tiny

STEPS = 2


@pytest.fixture
def tiny_model(monkeypatch):
  monkeypatch.setattr(registry, "build_model", train_tiny.build)


def _config(**data):
  """train_tiny's 32 px config on another source: 2 steps, one final eval."""
  config = train_tiny.config(num_train_steps=STEPS, log_every=1, eval_every=100,
                             checkpoint_every=100, eval_batch_size=2)
  for key, value in data.items():
    config.data[key] = value
  return config


def _photo(root):
  fixtures.photo_folder(str(root), [f"im{i:02d}" for i in range(10)])  # 9 train, 1 val
  return _config(source="photo", root=str(root), max_value=255.0)


def _h5(root):
  os.makedirs(root)
  files = {}
  for split, count in (("train", 4), ("val", 2)):
    files[f"{split}_file"] = str(root / f"{split}_qb.h5")
    fixtures.pancollection_file(files[f"{split}_file"], count=count,
                                seed=len(files))
  return _config(source="h5", max_value=2047.0, **files)


def _geotiff(root):
  pytest.importorskip("rasterio")
  # 2 x 2 tiles of 32 px: the first row trains; of the last, one tile is val, one test.
  fixtures.geotiff_pair(str(root), ms_hw=(64, 64))
  return _config(source="geotiff", root=str(root), sensor="QB", max_value=2047.0)


@pytest.mark.parametrize("make_config", [_photo, _h5, _geotiff])
def test_trains_and_reports(tmp_path, tiny_model, make_config):
  config = make_config(tmp_path / "data")
  workdir = tmp_path / "run"
  report = loop.train_and_evaluate(config, str(workdir))

  assert os.path.isdir(workdir / "checkpoints" / str(STEPS))
  with open(workdir / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  train = [r for r in records if r["split"] == "train"]
  assert [r["step"] for r in train] == list(range(1, STEPS + 1))
  assert all(math.isfinite(r["loss"]) for r in train), train
  with open(workdir / "eval" / "report.json") as f:
    written = json.load(f)
  val_count = len(sources.make_source(config.data, "val"))
  assert len(written["per_image"]["model"]) == val_count
  assert math.isfinite(written["mean"]["model"]["psnr"])
  assert report["mean"] == written["mean"]


# ---- bad data fails before the model is built ----

@pytest.fixture
def no_model(monkeypatch):
  """Fails the test if the loop gets as far as building the model."""
  def fail(config):
    raise AssertionError("the model was built before the data was checked")
  monkeypatch.setattr(builder, "make_model_and_optimizer", fail)


def _train_error(config, workdir):
  with pytest.raises(DataError) as info:
    loop.train_and_evaluate(config, str(workdir))
  return str(info.value)


def test_photo_nan_fails_before_the_model(tmp_path, no_model):
  root = tmp_path / "data"
  fixtures.photo_folder(str(root), ["a", "b", "c"], dtype=np.float32,
                        max_value=2047, exts=(".tif",) * 3)
  ms = np.full((8, 8, 4), 100.0, np.float32)
  ms[2, 5, 0] = np.inf
  path = root / "dataset" / "MS" / "a.tif"
  fixtures.write_image(str(path), ms)
  config = _config(source="photo", root=str(root))
  assert _train_error(config, tmp_path / "run") == f"{path}: NaN or Inf values"


def test_h5_range_fails_before_the_model(tmp_path, no_model):
  path = str(tmp_path / "train_gf2.h5")
  fixtures.pancollection_file(path)
  config = _config(source="h5", train_file=path, val_file=path, max_value=1023.0)
  assert _train_error(config, tmp_path / "run") == (
      f'{path}: dataset "gt" image 0: wrong dtype range: values up to 2047 '
      "exceed data.max_value=1023")


def test_h5_values_are_checked_lazily_after_the_first(tmp_path):
  path = str(tmp_path / "train.h5")
  fixtures.pancollection_file(path)
  with h5py.File(path, "a") as f:
    f["pan"][2, 0, 1, 1] = np.nan
    del f["lms"]
    f["lms"] = f["gt"][...].astype("S8")  # not numbers
  config = _config(source="h5", train_file=path)
  with pytest.raises(DataError, match=r'dataset "lms" holds \|S8 values'):
    sources.make_source(config.data, "train")
  with h5py.File(path, "a") as f:
    del f["lms"]
    f["lms"] = f["gt"][...]
  source = sources.make_source(config.data, "train")  # image 2 is not read
  with pytest.raises(DataError, match='dataset "pan" image 2: NaN or Inf'):
    source[2]
