"""Bad input gives one-line DataErrors naming the file and the problem, and exit 2."""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pansharp_jax.data import sources
from pansharp_jax.errors import DataError
from tests.data import fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = [f"im{i:02d}" for i in range(4)]


def _error(data_config, split="train", read=False):
  """The message of the DataError raised when building (and reading) a source."""
  with pytest.raises(DataError) as info:
    source = sources.make_source(data_config, split)
    if read:
      source[0]
  message = str(info.value)
  assert "\n" not in message
  return message


def _photo(root, **overrides):
  return fixtures.data_config(source="photo", root=str(root), **overrides)


# ---- photo folders ----

def test_photo_missing_folders(tmp_path):
  assert _error(_photo(tmp_path)) == f"{tmp_path}/dataset: missing folder"
  assert _error(_photo(tmp_path), "test") == f"{tmp_path}/testdateset: missing folder"
  fixtures.photo_folder(tmp_path, NAMES)
  shutil.rmtree(tmp_path / "dataset" / "PAN")
  assert _error(_photo(tmp_path)) == f"{tmp_path}/dataset/PAN: missing folder"
  assert _error(_photo("")) == "config.data.root: not set"


def test_photo_unmatched_names_are_listed(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES)
  os.remove(tmp_path / "dataset" / "MS" / "im01.png")
  os.remove(tmp_path / "dataset" / "PAN" / "im02.png")
  assert _error(_photo(tmp_path)) == (
      f"{tmp_path}/dataset: file names do not match between GT, MS, PAN: "
      "im01 (no MS); im02 (no PAN)")
  fixtures.photo_folder(tmp_path, [f"gt_only{i}" for i in range(6)], labels=("GT",))
  assert _error(_photo(tmp_path)).endswith("gt_only4 (no MS, PAN); ... (+3 more)")


def _replace(root, label, name, image):
  for old in (root / "dataset" / label).glob(name + ".*"):
    old.unlink()
  fixtures.write_image(str(root / "dataset" / label / f"{name}.tif"), image)
  return root / "dataset" / label / f"{name}.tif"


def test_photo_band_count_and_sizes(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES)
  gt = tmp_path / "dataset" / "GT" / "im00.png"
  assert _error(_photo(tmp_path, num_bands=3)) == (
      f"{gt}: 4 bands, but config.data.num_bands=3")
  ms = _replace(tmp_path, "MS", "im01", np.zeros((10, 10, 4), np.uint8))
  assert _error(_photo(tmp_path)) == (
      f"{ms}: PAN size 32x32 is not ratio 4 x MS size 10x10")
  _replace(tmp_path, "MS", "im01", np.zeros((8, 8, 4), np.uint8))
  gt = _replace(tmp_path, "GT", "im02", np.zeros((16, 16, 4), np.uint8))
  assert _error(_photo(tmp_path)) == f"{gt}: GT size 16x16 differs from PAN size 32x32"


def test_photo_color_pan(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES)
  pan = _replace(tmp_path, "PAN", "im00", np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
  assert _error(_photo(tmp_path), read=True) == (
      f"{pan}: PAN has 3 bands, expected 1 (or 3 identical gray channels)")


def test_photo_unreadable_and_truncated_images(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES)
  path = tmp_path / "dataset" / "GT" / "im00.png"
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])  # the header survives, the pixels do not
  assert _error(_photo(tmp_path), read=True).startswith(f"{path}: unreadable image (")
  path.write_text("not an image")
  assert _error(_photo(tmp_path)).startswith(f"{path}: unreadable image (")


def test_photo_16bit_rgb_png_is_refused(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES, bands=3, max_value=2047, dtype=np.uint16,
                        exts=(".tif", ".tif", ".png"))
  path = tmp_path / "dataset" / "GT" / "im00.png"
  (tmp_path / "dataset" / "GT" / "im00.tif").unlink()
  fixtures.write_png16_rgb(str(path), np.full((32, 32, 3), 2000, np.uint16))
  assert _error(_photo(tmp_path, num_bands=3)) == (
      f"{path}: 16-bit multi-band PNG, which Pillow reads as 8-bit; save it as TIFF")


def test_photo_nan_and_dtype_range(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES, max_value=2047, dtype=np.float32,
                        exts=(".tif",) * 3)
  ms = np.full((8, 8, 4), 100.0, np.float32)
  ms[3, 4, 1] = np.nan
  path = _replace(tmp_path, "MS", "im00", ms)
  assert _error(_photo(tmp_path), read=True) == f"{path}: NaN or Inf values"

  wide = tmp_path / "wide"
  fixtures.photo_folder(wide, NAMES, max_value=4095, dtype=np.uint16, exts=(".tif",) * 3)
  assert _error(_photo(wide), read=True) == (
      f"{wide}/dataset/PAN/im00.tif: wrong dtype range: values up to 4095 exceed "
      "data.max_value=2047")


def test_photo_mixed_bit_depths_and_duplicates(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES, max_value=2047, dtype=np.uint16, exts=(".tif",) * 3)
  pan = _replace(tmp_path, "PAN", "im01", np.zeros((32, 32, 1), np.uint8))
  assert _error(_photo(tmp_path)) == f"{pan}: uint8 data in a dataset of uint16 files"
  fixtures.write_image(str(tmp_path / "dataset" / "GT" / "im02.png"),
                       np.zeros((32, 32, 4), np.uint8))
  assert _error(_photo(tmp_path)) == (
      f"{tmp_path}/dataset/GT/im02.tif: same name as im02.png")


def test_photo_empty_splits(tmp_path):
  fixtures.photo_folder(tmp_path, NAMES[:1])
  assert _error(_photo(tmp_path)) == f"{tmp_path}/dataset: empty train split"
  for path in (tmp_path / "dataset").glob("*/*"):
    path.unlink()
  assert _error(_photo(tmp_path), "val") == f"{tmp_path}/dataset: empty val split"


# ---- PanCollection HDF5 ----

def _h5(path, split="train", **overrides):
  return fixtures.data_config(source="h5", **{f"{split}_file": str(path)}, **overrides)


def test_h5_keys_and_files(tmp_path):
  path = tmp_path / "train_wv3.h5"
  fixtures.pancollection_file(str(path), keys=("gt", "ms", "pan"))
  assert _error(_h5(path)) == f'{path}: missing dataset "lms"'
  fixtures.pancollection_file(str(path), keys=("ms", "lms", "pan"))
  assert _error(_h5(path, "val"), "val") == f'{path}: missing dataset "gt"'
  missing = tmp_path / "nowhere.h5"
  assert _error(_h5(missing)) == f"{missing}: file not found"
  path.write_text("not hdf5")
  assert _error(_h5(path)).startswith(f"{path}: unreadable HDF5 file (")
  assert _error(_h5("")) == "config.data.train_file: not set"


def test_h5_shapes(tmp_path):
  path = tmp_path / "train.h5"
  fixtures.pancollection_file(str(path))
  assert _error(_h5(path, num_bands=8)) == (
      f'{path}: dataset "gt": 4 bands, but config.data.num_bands=8')
  assert _error(_h5(path, ratio=2)) == (
      f"{path}: PAN size 32x32 is not ratio 2 x MS size 8x8")
  with h5py.File(path, "a") as f:
    del f["pan"]
    f["pan"] = np.zeros((2, 1, 32, 32))
  assert _error(_h5(path)) == f'{path}: dataset "gt" has 3 images, "pan" has 2'


def test_h5_values(tmp_path):
  path = tmp_path / "train.h5"
  fixtures.pancollection_file(str(path))
  assert _error(_h5(path, max_value=1023.0), read=True) == (
      f'{path}: dataset "gt" image 0: wrong dtype range: values up to 2047 exceed '
      "data.max_value=1023")
  path = tmp_path / "train_inf.h5"
  fixtures.pancollection_file(str(path))
  with h5py.File(path, "a") as f:
    f["ms"][0, 0, 0, 0] = np.inf
  assert _error(_h5(path), read=True) == f'{path}: dataset "ms" image 0: NaN or Inf values'


# ---- GeoTIFF scenes ----

def _geo(root, **overrides):
  values = dict(source="geotiff", root=str(root), image_size=16, sensor="QB")
  return fixtures.data_config(**{**values, **overrides})


def test_geotiff_pair_checks(tmp_path):
  pytest.importorskip("rasterio")
  ms, pan = (str(tmp_path / d / "scene.tif") for d in ("MS", "PAN"))
  fixtures.geotiff_pair(tmp_path, pan_offset=(100.0, 0.0))
  assert _error(_geo(tmp_path)) == f"{ms}, {pan}: extents do not overlap"
  fixtures.geotiff_pair(tmp_path)
  assert _error(_geo(tmp_path, ratio=2)) == (
      f"{ms}, {pan}: PAN pixel size 0.5 x 0.5 is not MS pixel size 2 x 2 / ratio 2")
  # Another CRS is resampled (tests/test_predict_scenes.py); the same
  # coordinates in the next UTM zone are some 500 km away.
  fixtures.geotiff(pan, np.zeros((128, 128, 1), np.uint16), pixel=0.5, crs="EPSG:32634")
  assert _error(_geo(tmp_path)) == f"{ms}, {pan}: extents do not overlap"
  fixtures.write_image(pan, np.zeros((128, 128, 1), np.uint16))  # a plain TIFF
  assert _error(_geo(tmp_path)) == f"{ms}, {pan}: only one of the pair is georeferenced"


def test_geotiff_source_checks(tmp_path):
  pytest.importorskip("rasterio")
  ms = str(tmp_path / "MS" / "scene.tif")
  fixtures.geotiff_pair(tmp_path, bands=3)
  assert _error(_geo(tmp_path)) == f"{ms}: 3 bands, but config.data.num_bands=4"
  fixtures.geotiff_pair(tmp_path)
  assert _error(_geo(tmp_path, sensor="WV3")) == (
      "config.data.sensor: sensor 'WV3' has 8 MS bands, got 4")
  assert _error(_geo(tmp_path, image_size=64)) == (
      f"{ms}: MS of 32x32 px is smaller than one data.image_size=64 px tile")
  assert _error(_geo(tmp_path, image_size=32), "val") == (
      f"{ms}: MS of 32x32 px makes 1x1 tiles of 32 px, 1 of them wholly in valid (not "
      "nodata) pixels: too few for train, val and test tiles (a valid tile above a row "
      "of two suffices)")
  fixtures.geotiff_pair(tmp_path, ms_hw=(32, 16))  # one held-out tile: val or test would be empty
  assert _error(_geo(tmp_path, image_size=16), "train") == (
      f"{ms}: MS of 32x16 px makes 2x1 tiles of 16 px, 2 of them wholly in valid (not "
      "nodata) pixels: too few for train, val and test tiles (a valid tile above a row "
      "of two suffices)")
  fixtures.geotiff_pair(tmp_path, max_value=4095)
  assert _error(_geo(tmp_path)) == (
      f"{ms}: wrong dtype range: values up to 4095 exceed data.max_value=2047")


# ---- through main.py: one line on stderr, exit status 2 ----

def _run_main(workdir, *overrides):
  args = [sys.executable, "main.py", "--config", "configs/default.py", "--workdir",
          str(workdir), *overrides]
  return subprocess.run(args, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                        capture_output=True, text=True, timeout=300)


def _missing_folder(root):
  return (["--config.data.source=photo", f"--config.data.root={root}"],
          f"{root}/dataset: missing folder")


def _h5_missing_key(root):
  root.mkdir()
  path = root / "train_wv3.h5"
  fixtures.pancollection_file(str(path), keys=("gt", "ms", "pan"))
  return (["--config.data.source=h5", f"--config.data.train_file={path}"],
          f'{path}: missing dataset "lms"')


@pytest.mark.parametrize("make_case", [_missing_folder, _h5_missing_key])
def test_main_prints_one_line_and_exits_2(tmp_path, make_case):
  overrides, message = make_case(tmp_path / "data")
  result = _run_main(tmp_path / "run", *overrides)
  assert result.returncode == 2, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and message in last, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
