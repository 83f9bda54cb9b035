"""GeoTIFF: georeference round trip, pair alignment, tifffile fallback, Wald tiles."""

import numpy as np
import pytest
import tifffile

from pansharp_jax.data import geotiff, sources, wald
from pansharp_jax.data.errors import DataError
from tests.data import fixtures

needs_rasterio = pytest.mark.skipif(geotiff.rasterio is None,
                                    reason="rasterio (the [geo] extra) is not installed")


def _pair_paths(root, name="scene"):
  return str(root / "MS" / f"{name}.tif"), str(root / "PAN" / f"{name}.tif")


@needs_rasterio
def test_write_keeps_crs_and_transform(tmp_path):
  ms, _ = fixtures.geotiff_pair(tmp_path)
  _, profile = geotiff.read_geotiff(_pair_paths(tmp_path)[0])
  fused = np.arange(32 * 32 * 3, dtype=np.float32).reshape(32, 32, 3)
  out = str(tmp_path / "fused.tif")
  geotiff.write_geotiff(out, fused, profile_like=profile)
  array, written = geotiff.read_geotiff(out)
  np.testing.assert_array_equal(array, fused)
  assert written["crs"] == profile["crs"] and written["transform"] == profile["transform"]
  assert str(written["crs"]) == "EPSG:32633"
  geotiff.write_geotiff(out, ms[..., 0])  # (H, W), no georeference
  array, plain = geotiff.read_geotiff(out)
  assert array.shape == (32, 32, 1) and plain["crs"] is None and plain["transform"] is None


@needs_rasterio
def test_read_pair_same_extent(tmp_path):
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(16, 12))
  pair = geotiff.read_pair(*_pair_paths(tmp_path), ratio=4)
  np.testing.assert_array_equal(pair.ms, ms)
  np.testing.assert_array_equal(pair.pan, pan)
  _, pan_profile = geotiff.read_geotiff(_pair_paths(tmp_path)[1])
  assert pair.profile["transform"] == pan_profile["transform"]


@needs_rasterio
def test_read_pair_crops_to_the_common_area(tmp_path):
  # PAN starts 2 MS pixels east and extends 1 MS pixel (2 m) further north.
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(16, 12), pan_offset=(4.0, 2.0))
  pair = geotiff.read_pair(*_pair_paths(tmp_path), ratio=4)
  np.testing.assert_array_equal(pair.ms, ms[0:15, 2:12])
  np.testing.assert_array_equal(pair.pan, pan[4:64, 0:40])
  transform = pair.profile["transform"]
  assert (transform.c, transform.f, transform.a) == (500_004.0, 4_000_000.0, 0.5)
  assert (pair.profile["height"], pair.profile["width"]) == (60, 40)


@needs_rasterio
def test_read_pair_subpixel_shift_keeps_ratio(tmp_path):
  fixtures.geotiff_pair(tmp_path, ms_hw=(16, 12), pan_offset=(0.2, -0.2))
  pair = geotiff.read_pair(*_pair_paths(tmp_path), ratio=4)
  assert pair.pan.shape[:2] == (4 * pair.ms.shape[0], 4 * pair.ms.shape[1])
  assert pair.ms.shape[:2] == (15, 11)


def test_tifffile_fallback_without_rasterio(tmp_path, monkeypatch):
  monkeypatch.setattr(geotiff, "rasterio", None)
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(8, 8), georeferenced=False)
  array, profile = geotiff.read_geotiff(_pair_paths(tmp_path)[0])
  np.testing.assert_array_equal(array, ms)
  assert profile["crs"] is None and profile["transform"] is None
  pair = geotiff.read_pair(*_pair_paths(tmp_path), ratio=4)
  np.testing.assert_array_equal(pair.pan, pan)
  out = str(tmp_path / "plain.tif")
  geotiff.write_geotiff(out, ms, profile_like=profile)
  np.testing.assert_array_equal(geotiff.read_tiff(out), ms)
  with pytest.raises(DataError, match="needs rasterio"):
    geotiff.write_geotiff(out, ms, profile_like={"crs": "EPSG:4326", "transform": None})


def test_band_sequential_tiff_reads_as_hwc(tmp_path):
  planes = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
  path = str(tmp_path / "planar.tif")
  tifffile.imwrite(path, planes, photometric="minisblack", planarconfig="separate")
  np.testing.assert_array_equal(geotiff.read_tiff(path), np.moveaxis(planes, 0, -1))
  assert geotiff.tiff_header(path) == ((4, 5, 3), np.uint16)


@pytest.mark.parametrize("georeferenced", [
    pytest.param(True, marks=needs_rasterio), False])
def test_wald_source_tiles_exact_values(tmp_path, georeferenced):
  # 66x50 MS: 4x3 tiles of 16 px; the leftover border is dropped.
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(66, 50), georeferenced=georeferenced)
  config = fixtures.data_config(source="geotiff", root=str(tmp_path), image_size=16,
                                sensor="QB")
  train, val = (sources.make_source(config, split) for split in ("train", "val"))
  assert (len(train), len(val), len(sources.make_source(config, "test"))) == (9, 3, 3)
  assert (train.max_value, train.num_bands, train.ratio) == (2047.0, 4, 4)
  gt_scene = ms[:64, :48] / np.float32(2047)
  expected = wald.wald_degrade(gt_scene, pan[:256, :192] / np.float32(2047), "QB", 4)
  sample = train[5]  # tile row 1, column 2
  np.testing.assert_array_equal(sample["gt"], gt_scene[16:32, 32:48])
  np.testing.assert_array_equal(sample["ms"], expected["ms"][4:8, 8:12])
  np.testing.assert_array_equal(sample["pan"], expected["pan"][16:32, 32:48])
  np.testing.assert_array_equal(sample["lms"], np.clip(expected["lms"][16:32, 32:48], 0, 1))
  np.testing.assert_array_equal(val[0]["gt"], gt_scene[48:64, 0:16])  # the last tile row
  assert all(v.dtype == np.float32 for v in sample.values())
