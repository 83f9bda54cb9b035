"""data/geotiff_tiles.py: which tiles each split gets (nodata, layout),
that no split's inputs depend on another split's pixels, and the one-line
errors of scenes without enough valid tiles."""

import numpy as np
import pytest

from pansharp_jax.data import geotiff_tiles
from pansharp_jax.errors import DataError
from tests.data import fixtures

pytest.importorskip("rasterio")

COMMON = dict(num_bands=4, ratio=4, max_value=2047.0, sensor="QB", tile_size=16)


def _scene(root, *, ms=None, pan=None, nodata=None, seed=0):
  """ROOT/MS/s.tif (64 x 64 x 4) + ROOT/PAN/s.tif (256 x 256), smooth
  content in [1, 1500] (room for +500 DN) without zeros; returns the arrays written."""
  if ms is None:
    ms = fixtures.smooth_image([seed, 0], (64, 64, 4), 1500, 3)
    pan = fixtures.smooth_image([seed, 1], (256, 256, 1), 1500, 12)
  fixtures.geotiff(str(root / "MS" / "s.tif"), ms, pixel=2.0, nodata=nodata)
  fixtures.geotiff(str(root / "PAN" / "s.tif"), pan, pixel=0.5, nodata=nodata)
  return ms, pan


def _sources(root):
  return {split: geotiff_tiles.GeoTiffWaldSource(str(root), split, **COMMON)
          for split in ("train", "val", "test")}


def _samples(source):
  return [source[i] for i in range(len(source))]


def test_layout_keeps_held_out_rows_below_training_rows_and_val_apart_from_test():
  valid = np.ones((10, 3), bool)
  start, layout = geotiff_tiles.split_layout(valid)
  assert start == 9
  assert layout["val"] == [(9, 0)] and layout["test"] == [(9, 1), (9, 2)]
  assert len(layout["train"]) == 27 and max(r for r, _ in layout["train"]) == 8
  # Invalid last rows and a lone valid tile: held-out rows move up until they
  # hold two valid tiles; invalid tiles belong to no split.
  valid[7:] = False
  valid[6, 1:] = False
  start, layout = geotiff_tiles.split_layout(valid)
  assert start == 5 and layout["val"] == [(5, 0), (5, 1)]
  assert layout["test"] == [(5, 2), (6, 0)]
  assert (6, 1) not in layout["train"] + layout["test"]


def test_nodata_border_gives_no_empty_tile_and_the_coverage_of_each_split(tmp_path):
  ms, pan = _scene(tmp_path)
  ms[48:], pan[192:] = 0, 0            # the bottom quarter is nodata
  _scene(tmp_path, ms=ms, pan=pan, nodata=0)
  sources = _sources(tmp_path)
  for split, source in sources.items():
    assert len(source) > 0
    for sample in _samples(source):
      assert sample["gt"].min() > 0, split          # no nodata pixel in any tile
      assert sample["pan"].min() > 0, split
  # 4 x 4 tiles of 16 px, the last row nodata: rows 0-1 train, row 2 held out.
  assert {k: v["tiles"] for k, v in sources["val"].coverage.items()} == {
      "train": 8, "val": 2, "test": 2}
  assert sources["train"].coverage["train"]["scene_fraction"] == 0.5
  assert sources["train"].coverage["val"]["scene_fraction"] == 0.125


def test_val_tiles_are_the_stored_pixels_of_the_scene(tmp_path):
  ms, _ = _scene(tmp_path)
  val = _sources(tmp_path)["val"]
  # 4 rows of tiles: the last is held out, its first two tiles are val.
  np.testing.assert_allclose(val[1]["gt"], ms[48:64, 16:32] / 2047.0, rtol=1e-6)


@pytest.mark.parametrize("held_out", ["val", "test"])
def test_no_training_input_changes_when_held_out_pixels_change(tmp_path, held_out):
  ms, pan = _scene(tmp_path / "a")
  before = _sources(tmp_path / "a")
  # Held-out tiles: row 3; val is columns 0-1, test columns 2-3.
  cols = slice(0, 32) if held_out == "val" else slice(32, 64)
  ms2, pan2 = ms.copy(), pan.copy()
  ms2[48:, cols] += 500
  pan2[192:, slice(cols.start * 4, cols.stop * 4)] += 500
  _scene(tmp_path / "b", ms=ms2, pan=pan2)
  after = _sources(tmp_path / "b")
  other = "test" if held_out == "val" else "val"
  for split in ("train", other):
    for a, b in zip(_samples(before[split]), _samples(after[split])):
      for key in ("gt", "ms", "lms", "pan"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split} {key}")
  changed = [np.abs(a["gt"] - b["gt"]).max()
             for a, b in zip(_samples(before[held_out]), _samples(after[held_out]))]
  assert min(changed) > 0.2  # the perturbation did reach the held-out tiles


def test_training_inputs_ignore_held_out_pixels_across_a_nodata_gap(tmp_path):
  """Nodata just above the held-out row is filled from training pixels
  only, never mirrored from the held-out row below it."""
  ms, pan = _scene(tmp_path / "a")
  ms[40:48, :8], pan[160:192, :32] = 0, 0
  _scene(tmp_path / "a", ms=ms, pan=pan, nodata=0)
  ms2, pan2 = ms.copy(), pan.copy()
  ms2[48:] += 500
  pan2[192:] += 500
  _scene(tmp_path / "b", ms=ms2, pan=pan2, nodata=0)
  a, b = (geotiff_tiles.GeoTiffWaldSource(str(p), "train", **COMMON)
          for p in (tmp_path / "a", tmp_path / "b"))
  assert len(a) == 11  # the tile with nodata is left out
  for x, y in zip(_samples(a), _samples(b)):
    for key in ("gt", "ms", "lms", "pan"):
      np.testing.assert_array_equal(x[key], y[key])


def test_scene_with_too_few_valid_tiles_is_one_line_naming_it(tmp_path):
  ms, pan = _scene(tmp_path)
  ms[:, 16:], pan[:, 64:] = 0, 0           # one column of valid tiles
  ms[16:], pan[64:] = 0, 0                 # ... and of it one tile
  _scene(tmp_path, ms=ms, pan=pan, nodata=0)
  with pytest.raises(DataError) as e:
    geotiff_tiles.GeoTiffWaldSource(str(tmp_path), "train", **COMMON)
  message = str(e.value)
  assert message.endswith("MS/s.tif: MS of 64x64 px makes 4x4 tiles of 16 px, 1 of them "
                          "wholly in valid (not nodata) pixels: too few for train, val and "
                          "test tiles (a valid tile above a row of two suffices)")
  assert "\n" not in message
