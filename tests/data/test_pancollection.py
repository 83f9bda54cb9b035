"""PanCollection HDF5: exact values, lms clipping, full-resolution files, lazy opening."""

import os
import pickle

import numpy as np
import pytest

from pansharp_jax.data import pipeline, sources
from pansharp_jax.data.pancollection import PanCollectionSource
from tests.data import fixtures


def _hwc(array, index, max_value):
  return np.moveaxis(array[index], 0, -1).astype(np.float32) / np.float32(max_value)


@pytest.mark.parametrize("max_value", [2047, 1023])
def test_exact_values(tmp_path, max_value):
  path = str(tmp_path / "train_wv3.h5")
  arrays = fixtures.pancollection_file(path, max_value=max_value)
  source = sources.make_source(
      fixtures.data_config(source="h5", train_file=path, max_value=float(max_value)), "train")
  assert len(source) == 3 and source.name == "train_wv3"
  assert (source.max_value, source.num_bands, source.ratio) == (max_value, 4, 4)
  sample = source[2]
  for key in ("gt", "ms", "pan"):
    np.testing.assert_array_equal(sample[key], _hwc(arrays[key], 2, max_value))
  np.testing.assert_array_equal(sample["lms"][..., 1:], _hwc(arrays["lms"], 2, max_value)[..., 1:])
  first = source[0]["lms"]
  assert first[0, 0, 0] == 0.0 and first[0, 1, 0] == 1.0  # the overshoots, clipped
  assert {k: v.shape for k, v in sample.items()} == {
      "gt": (32, 32, 4), "ms": (8, 8, 4), "lms": (32, 32, 4), "pan": (32, 32, 1)}
  with pytest.raises(IndexError):
    source[3]


def test_full_resolution_test_file_has_no_gt(tmp_path):
  path = str(tmp_path / "test_wv3_OrigScale_multiExm1.h5")
  fixtures.pancollection_file(path, keys=("ms", "lms", "pan"))
  source = sources.make_source(fixtures.data_config(source="h5", test_file=path), "test")
  assert set(source[0]) == {"ms", "lms", "pan"}


def test_opens_lazily_per_process(tmp_path, monkeypatch):
  path = str(tmp_path / "train.h5")
  fixtures.pancollection_file(path)
  source = PanCollectionSource(path, num_bands=4, ratio=4, max_value=2047)
  assert source._file is None  # nothing open to be inherited by workers
  expected = float(source[1]["pan"].sum())
  assert source._file is not None
  clone = pickle.loads(pickle.dumps(source))
  assert clone._file is None and float(clone[1]["pan"].sum()) == expected
  # A forked worker (another pid) inherits the parent's handle but opens its own.
  inherited = source._file
  monkeypatch.setattr(os, "getpid", lambda: -1)
  assert float(source[1]["pan"].sum()) == expected
  assert source._file is not inherited


def test_feeds_the_grain_pipeline(tmp_path):
  path = str(tmp_path / "valid.h5")
  fixtures.pancollection_file(path)
  source = PanCollectionSource(path, num_bands=4, ratio=4, max_value=2047)
  batches = list(pipeline.eval_batches(source, 2))
  assert [b["gt"].shape for b in batches] == [(2, 32, 32, 4), (1, 32, 32, 4)]
