"""GeoTIFF: georeference round trip, pair alignment, tifffile fallback, Wald tiles."""

import numpy as np
import pytest
import tifffile

from pansharp_jax.data import geotiff, sources, wald
from pansharp_jax.data.scene import ArrayScene, SceneWriter
from pansharp_jax.errors import DataError
from tests.data import fixtures

needs_rasterio = pytest.mark.skipif(geotiff.rasterio is None,
                                    reason="rasterio (the [geo] extra) is not installed")


def _pair_paths(root, name="scene"):
  return str(root / "MS" / f"{name}.tif"), str(root / "PAN" / f"{name}.tif")


def _write_scene(path, ms, pan, profile=None, max_value=2047):
  """Writes `ms` at PAN size through SceneWriter, as predict writes a fusion."""
  scene = ArrayScene(ms[::4, ::4], pan, 4, max_value, profile)
  writer = SceneWriter(path, scene)
  writer.write(0, ms[:16].astype(np.float32) / max_value)
  writer.write(16, ms[16:].astype(np.float32) / max_value)
  writer.close()


@needs_rasterio
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_writer_keeps_crs_and_transform(tmp_path):
  import rasterio
  fixtures.geotiff_pair(tmp_path, ms_hw=(8, 8))
  pair = fixtures.read_common_area(*_pair_paths(tmp_path), ratio=4)
  image = fixtures.random_image(3, (32, 32, 4), 2047, np.uint16)
  out = str(tmp_path / "fused.tif")
  _write_scene(out, image, pair.pan, pair.profile)
  with rasterio.open(out) as dst:
    np.testing.assert_array_equal(np.moveaxis(dst.read(), 0, -1), image)
    assert dst.crs == pair.profile["crs"] and dst.transform == pair.profile["transform"]
    assert str(dst.crs) == "EPSG:32633"
  _write_scene(out, image, pair.pan)  # no georeference
  with rasterio.open(out) as dst:
    assert dst.count == 4 and dst.crs is None


@needs_rasterio
def test_common_area_same_extent(tmp_path):
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(16, 12))
  pair = fixtures.read_common_area(*_pair_paths(tmp_path), ratio=4)
  np.testing.assert_array_equal(pair.ms, ms)
  np.testing.assert_array_equal(pair.pan, pan)
  import rasterio
  with rasterio.open(_pair_paths(tmp_path)[1]) as pan_src:
    assert pair.profile["transform"] == pan_src.transform


@needs_rasterio
def test_common_area_crops_to_the_common_area(tmp_path):
  # PAN starts 2 MS pixels east and extends 1 MS pixel (2 m) further north.
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(16, 12), pan_offset=(4.0, 2.0))
  pair = fixtures.read_common_area(*_pair_paths(tmp_path), ratio=4)
  np.testing.assert_array_equal(pair.ms, ms[0:15, 2:12])
  np.testing.assert_array_equal(pair.pan, pan[4:64, 0:40])
  transform = pair.profile["transform"]
  assert (transform.c, transform.f, transform.a) == (500_004.0, 4_000_000.0, 0.5)
  assert (pair.profile["height"], pair.profile["width"]) == (60, 40)


@needs_rasterio
def test_common_area_subpixel_shift_keeps_ratio(tmp_path):
  fixtures.geotiff_pair(tmp_path, ms_hw=(16, 12), pan_offset=(0.2, -0.2))
  pair = fixtures.read_common_area(*_pair_paths(tmp_path), ratio=4)
  assert pair.pan.shape[:2] == (4 * pair.ms.shape[0], 4 * pair.ms.shape[1])
  assert pair.ms.shape[:2] == (15, 11)


def test_tifffile_fallback_without_rasterio(tmp_path, monkeypatch):
  monkeypatch.setattr(geotiff, "rasterio", None)
  ms, pan = fixtures.geotiff_pair(tmp_path, ms_hw=(8, 8), georeferenced=False)
  pair = fixtures.read_common_area(*_pair_paths(tmp_path), ratio=4)
  np.testing.assert_array_equal(pair.ms, ms)
  np.testing.assert_array_equal(pair.pan, pan)
  assert pair.profile["crs"] is None and pair.profile["transform"] is None
  out = str(tmp_path / "plain.tif")
  image = fixtures.random_image(3, (32, 32, 4), 2047, np.uint16)
  _write_scene(out, image, pan, pair.profile)
  np.testing.assert_array_equal(geotiff.read_tiff(out), image)
  with pytest.raises(DataError, match="needs rasterio"):
    _write_scene(out, image, pan, {"crs": "EPSG:4326", "transform": None})


def test_tifffile_fallback_refuses_a_pan_of_another_bit_depth(tmp_path, monkeypatch):
  """Without rasterio too: an 8-bit PAN beside 16-bit MS would be scaled by
  the MS's max_value (the GeoTIFF tiles once checked this themselves)."""
  monkeypatch.setattr(geotiff, "rasterio", None)
  fixtures.geotiff_pair(tmp_path, ms_hw=(8, 8), georeferenced=False)
  pan = fixtures.random_image(1, (32, 32, 1), 255, np.uint8)
  fixtures.write_image(_pair_paths(tmp_path)[1], pan)
  with pytest.raises(DataError, match=r"PAN/scene.tif: uint8 data in a dataset of uint16 files$"):
    fixtures.read_common_area(*_pair_paths(tmp_path), ratio=4)


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
  assert (len(train), len(val), len(sources.make_source(config, "test"))) == (9, 1, 2)
  assert (train.max_value, train.num_bands, train.ratio) == (2047.0, 4, 4)
  gt_scene, pan_scene = ms[:64, :48] / np.float32(2047), pan[:256, :192] / np.float32(2047)
  # The training region (tile rows 0-2) is degraded as one image, without
  # the held-out row below it.
  expected = wald.wald_degrade(gt_scene[:48], pan_scene[:192], "QB", 4)
  sample = train[5]  # tile row 1, column 2
  np.testing.assert_array_equal(sample["gt"], gt_scene[16:32, 32:48])
  np.testing.assert_array_equal(sample["ms"], expected["ms"][4:8, 8:12])
  np.testing.assert_array_equal(sample["pan"], expected["pan"][16:32, 32:48])
  np.testing.assert_array_equal(sample["lms"], np.clip(expected["lms"][16:32, 32:48], 0, 1))
  assert all(v.dtype == np.float32 for v in sample.values())
  # A held-out tile (the last tile row) is degraded by itself.
  held = wald.wald_degrade(gt_scene[48:64, 0:16], pan_scene[192:256, 0:64], "QB", 4)
  for key in ("gt", "ms", "pan"):
    np.testing.assert_array_equal(val[0][key], held[key])
  np.testing.assert_array_equal(val[0]["lms"], np.clip(held["lms"], 0, 1))


def _tile_origins(source, gt_scene, size):
  """(row, col) of each of the source's GT tiles in `gt_scene`."""
  origins = []
  for sample in (source[i] for i in range(len(source))):
    hits = [(r, c) for r in range(0, gt_scene.shape[0], size)
            for c in range(0, gt_scene.shape[1], size)
            if np.array_equal(sample["gt"], gt_scene[r:r + size, c:c + size])]
    assert len(hits) == 1
    origins += hits
  return origins


def test_wald_source_val_and_test_hold_out_disjoint_tiles(tmp_path):
  # 128x64 MS at 32 px: 4x2 tiles; the last row is held out, split between
  # val (its left tile) and test (its right tile).
  ms, _ = fixtures.geotiff_pair(tmp_path, ms_hw=(128, 64), georeferenced=False)
  config = fixtures.data_config(source="geotiff", root=str(tmp_path), image_size=32,
                                sensor="QB")
  gt_scene = ms / np.float32(2047)
  origins = {split: _tile_origins(sources.make_source(config, split), gt_scene, 32)
             for split in ("train", "val", "test")}
  assert origins["val"] == [(96, 0)]
  assert origins["test"] == [(96, 32)]
  assert sorted(origins["train"]) == [(r, c) for r in (0, 32, 64) for c in (0, 32)]
