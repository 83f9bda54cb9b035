"""benchmarks/recipes.py: the real-like scenes it writes and the table it prints."""

import jax
import numpy as np
import tifffile

from benchmarks import recipes
from configs import default
from pansharp_jax.data.geotiff_tiles import GeoTiffWaldSource
from pansharp_jax.models import registry, sizes


def test_scenes_are_deterministic_full_resolution_pairs_the_geotiff_source_reads(tmp_path):
  recipes.write_scenes(str(tmp_path / "a"), 2, 64)
  recipes.write_scenes(str(tmp_path / "b"), 2, 64)
  for kind, shape in (("MS", (64, 64, 4)), ("PAN", (256, 256))):
    for name in ("scene_00.tif", "scene_01.tif"):
      image = tifffile.imread(tmp_path / "a" / kind / name)
      assert image.shape == shape and image.dtype == np.uint16
      assert 0 < image.max() <= 2047
      np.testing.assert_array_equal(image, tifffile.imread(tmp_path / "b" / kind / name))
  scene0 = tifffile.imread(tmp_path / "a" / "MS" / "scene_00.tif")
  assert np.abs(scene0.astype(int) - tifffile.imread(tmp_path / "a" / "MS" / "scene_01.tif")).mean() > 10
  common = dict(num_bands=4, ratio=4, max_value=2047, sensor="QB", tile_size=32)
  train = GeoTiffWaldSource(str(tmp_path / "a"), "train", **common)
  val = GeoTiffWaldSource(str(tmp_path / "a"), "val", **common)
  test = GeoTiffWaldSource(str(tmp_path / "a"), "test", **common)
  # 2x2 tiles of 32 px per 64 px scene, the last row of each held out: one tile val, one test.
  assert (len(train), len(val), len(test)) == (4, 2, 2)
  assert val[0]["gt"].shape == (32, 32, 4) and val[0]["pan"].shape == (32, 32, 1)


def test_existing_scenes_are_kept(tmp_path):
  recipes.write_scenes(str(tmp_path), 1, 64)
  path = tmp_path / "MS" / "scene_00.tif"
  tifffile.imwrite(path, np.ones((64, 64, 4), np.uint16))
  recipes.write_scenes(str(tmp_path), 1, 64)
  assert tifffile.imread(path).max() == 1


def test_table_names_the_metrics_the_model_wins():
  mean = {"model": {"psnr": 31.0, "sam": 4.0, "ergas": 3.5, "q2n": 0.90},
          "EXP": {"psnr": 24.0, "sam": 5.0, "ergas": 7.0, "q2n": 0.70},
          "GSA": {"psnr": 30.0, "sam": 6.0, "ergas": 3.0, "q2n": 0.90}}
  table = recipes._table(mean)
  assert "| model | 31 | 4 | 3.5 | 0.9 |" in table
  # ERGAS: GSA is lower; Q2n: a tie is not a win.
  assert table.endswith("the model beats every baseline on: PSNR (dB), SAM (deg)")


def test_the_small_recipe_builds_small_at_its_own_width():
  # configs/default.py sets tiny's width (model.dim=24) and two full-resolution
  # blocks; small must inherit neither.
  config = default.get_config()
  config.update_from_flattened_dict(recipes.RECIPES["small"])
  ms, pan = np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 16, 16, 1), np.float32)
  shapes = jax.eval_shape(registry.build_model(config.model, 4).init,
                          jax.random.PRNGKey(0), ms, pan)
  width = shapes["params"]["decoder"]["ms_first"]["kernel"].shape[-1]
  assert width == sizes.SIZES["small"].dim == 32
  assert not any(k.startswith("refine_") for k in shapes["params"]["decoder"])
