"""Photo folders: exact values for 8/16-bit images, both MS sizes, splits, layouts."""

import numpy as np
import pytest

from pansharp_jax.data import photo, pipeline, sources, wald
from pansharp_jax.data.photo import PhotoFolderSource
from tests.data import fixtures

NAMES = [f"im{i:02d}" for i in range(10)]


def _source(root, split="train", **overrides):
  return sources.make_source(
      fixtures.data_config(source="photo", root=str(root), **overrides), split)


def _expected_lms(ms):
  return np.clip(wald.interp23tap(ms, 4), 0.0, 1.0)


def test_8bit_values_and_split(tmp_path):
  written = fixtures.photo_folder(tmp_path, NAMES[::-1])  # written out of order
  train, val = _source(tmp_path, "train"), _source(tmp_path, "val")
  assert (len(train), len(val)) == (9, 1)
  assert train.max_value == 255.0 and (train.num_bands, train.ratio) == (4, 4)
  sample = val[0]  # sorted names: the last one is val
  arrays = written[NAMES[-1]]
  np.testing.assert_array_equal(sample["gt"], arrays["GT"] / np.float32(255))
  np.testing.assert_array_equal(sample["ms"], arrays["MS"] / np.float32(255))
  np.testing.assert_array_equal(sample["pan"], arrays["PAN"] / np.float32(255))
  np.testing.assert_allclose(sample["lms"], _expected_lms(sample["ms"]), atol=1e-6)
  assert {k: v.shape for k, v in sample.items()} == {
      "gt": (32, 32, 4), "ms": (8, 8, 4), "lms": (32, 32, 4), "pan": (32, 32, 1)}
  assert all(v.dtype == np.float32 for v in sample.values())


def test_16bit_mixed_extensions_uses_config_max_value(tmp_path):
  written = fixtures.photo_folder(tmp_path, NAMES[:3], max_value=2047, dtype=np.uint16,
                                  exts=(".tif", ".TIFF", ".png"))
  source = _source(tmp_path, "train", max_value=2047.0)
  assert source.max_value == 2047.0
  sample = source[1]
  for key, label in (("gt", "GT"), ("ms", "MS"), ("pan", "PAN")):
    np.testing.assert_array_equal(sample[key], written[NAMES[1]][label] / np.float32(2047))


def test_8bit_tif_ms_and_bmp_pan(tmp_path):
  written = fixtures.photo_folder(tmp_path, NAMES[:2], bands=3, exts=(".jpg", ".tif", ".bmp"))
  sample = _source(tmp_path, "train", num_bands=3)[0]
  np.testing.assert_array_equal(sample["ms"], written[NAMES[0]]["MS"] / np.float32(255))
  np.testing.assert_array_equal(sample["pan"], written[NAMES[0]]["PAN"] / np.float32(255))
  # JPEG is lossy: only its size and range.
  assert sample["gt"].shape == (32, 32, 3) and 0 <= sample["gt"].min() <= sample["gt"].max() <= 1


def test_ms_at_gt_size_is_lms_and_block_mean_is_ms(tmp_path):
  written = fixtures.photo_folder(tmp_path, NAMES[:2], ms_upsampled=True)
  sample = _source(tmp_path, "train")[0]
  given = written[NAMES[0]]["MS"] / np.float32(255)
  np.testing.assert_array_equal(sample["lms"], given)
  expected = given.reshape(8, 4, 8, 4, 4).mean(axis=(1, 3))
  np.testing.assert_allclose(sample["ms"], expected, rtol=1e-6)
  assert sample["ms"].dtype == np.float32


def test_gray_rgb_pan_is_accepted(tmp_path):
  written = fixtures.photo_folder(tmp_path, NAMES[:2])
  pan = written[NAMES[0]]["PAN"]
  fixtures.write_image(str(tmp_path / "dataset" / "PAN" / f"{NAMES[0]}.png"),
                       np.repeat(pan, 3, axis=-1))
  np.testing.assert_array_equal(_source(tmp_path)[0]["pan"], pan / np.float32(255))


def test_test_split_with_and_without_gt(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES[:3], folder="testdateset")
  assert len(_source(tmp_path, "test")) == 3
  full = tmp_path / "full"
  written = fixtures.photo_folder(full, NAMES[:2], folder="testdateset", labels=("MS", "PAN"))
  source = _source(full, "test")
  sample = source[1]
  assert set(sample) == {"ms", "lms", "pan"}
  np.testing.assert_array_equal(sample["ms"], written[NAMES[1]]["MS"] / np.float32(255))


@pytest.mark.parametrize("count, train, val", [
    (10, range(0, 9), range(9, 10)), (19, range(0, 17), range(17, 19)),
    (2, range(0, 1), range(1, 2)), (700, range(0, 600), range(600, 650))])
def test_split_sizes(count, train, val):
  names = list(range(count))
  assert names[photo.split_slice(count, "train")] == list(train)
  assert names[photo.split_slice(count, "val")] == list(val)


def test_feeds_the_grain_pipeline(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES[:5])
  config = fixtures.data_config(source="photo", root=str(tmp_path), image_size=16)
  source = PhotoFolderSource(str(tmp_path), "train", num_bands=4, ratio=4, max_value=255)
  batch = next(iter(pipeline.train_dataset(source, config, batch_size=2, seed=0)))
  assert batch["ms"].shape == (2, 4, 4, 4) and batch["pan"].shape == (2, 16, 16, 1)
