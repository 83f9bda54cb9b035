"""Each bad input through `main.py` in a subprocess: one `error: ...` line that
names the file or field, exit status 2, no traceback.

Every case fails while the data sources (or the predict scene) are opened,
before any model is compiled. Photo folders and HDF5 files check the pixel
values of their first sample when built and the rest when read; the NaN/Inf
and value-range cases here use GeoTIFF scenes, which are read whole when
their source is built (tests/data/test_train_sources.py covers the photo and
HDF5 early checks).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.data import fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = [f"im{i:02d}" for i in range(4)]
# Small and fast whatever fails after the checks.
SMALL = ["--config.data.image_size=32", "--config.num_train_steps=1"]


def _photo(root):
  return ["--config.data.source=photo", f"--config.data.root={root}"]


def _geo(root):
  return ["--config.data.source=geotiff", f"--config.data.root={root}",
          "--config.data.image_size=16", "--config.data.sensor=QB"]


def missing_folder(root):
  return _photo(root), f"{root}/dataset: missing folder"


def unmatched_names(root):
  fixtures.photo_folder(str(root), NAMES)
  os.remove(root / "dataset" / "MS" / "im01.png")
  os.remove(root / "dataset" / "GT" / "im02.png")
  return _photo(root), (f"{root}/dataset: file names do not match between GT, MS, "
                        "PAN: im01 (no MS); im02 (no GT)")


def wrong_band_count(root):
  fixtures.geotiff_pair(str(root), bands=3)
  return _geo(root), f"{root}/MS/scene.tif: 3 bands, but config.data.num_bands=4"


def pan_not_ratio_times_ms(root):
  fixtures.geotiff_pair(str(root), georeferenced=False)
  fixtures.write_image(str(root / "PAN" / "scene.tif"),
                       fixtures.random_image(1, (96, 96, 1), 2047, np.uint16))
  return _geo(root), (
      f"{root}/MS/scene.tif, {root}/PAN/scene.tif: PAN size 96x96 is not "
      "ratio 4 x MS size 32x32")


def corrupt_image(root):
  fixtures.photo_folder(str(root), NAMES)
  path = root / "dataset" / "PAN" / "im00.png"
  path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
  return _photo(root), f"{path}: unreadable image ("


def nan_values(root):
  ms, _ = fixtures.geotiff_pair(str(root), dtype=np.float32, max_value=1)
  ms = ms.astype(np.float32)
  ms[3, 5, 1] = np.nan
  fixtures.geotiff(str(root / "MS" / "scene.tif"), ms)
  return _geo(root) + ["--config.data.max_value=1.0"], (
      f"{root}/MS/scene.tif: NaN or Inf values")


def empty_split(root):
  fixtures.photo_folder(str(root), NAMES[:1])
  return _photo(root), f"{root}/dataset: empty train split"


def h5_missing_key(root):
  root.mkdir()
  path = root / "train_wv3.h5"
  fixtures.pancollection_file(str(path), keys=("gt", "ms", "pan"))
  return (["--config.data.source=h5", f"--config.data.train_file={path}"],
          f'{path}: missing dataset "lms"')


def geotiff_no_overlap_predict(root):
  """--mode=predict: the scene is checked before the model is built."""
  fixtures.geotiff_pair(str(root), pan_offset=(100.0, 0.0))
  ms, pan = root / "MS" / "scene.tif", root / "PAN" / "scene.tif"
  return (["--mode=predict", f"--ms={ms}", f"--pan={pan}", f"--out={root}/f.tif"],
          f"{ms}, {pan}: extents do not overlap")


def geotiff_other_crs_no_overlap_predict(root):
  """An MS in another CRS is resampled, unless it lies elsewhere: the same
  coordinates in the next UTM zone are some 500 km away."""
  ms, _ = fixtures.geotiff_pair(str(root))
  fixtures.geotiff(str(root / "MS" / "scene.tif"), ms, crs="EPSG:32634")
  ms, pan = root / "MS" / "scene.tif", root / "PAN" / "scene.tif"
  return (["--mode=predict", f"--ms={ms}", f"--pan={pan}", f"--out={root}/f.tif"],
          f"{ms}, {pan}: extents do not overlap")


def nodata_outside_dtype_predict(root):
  fixtures.geotiff_pair(str(root))
  ms, pan = root / "MS" / "scene.tif", root / "PAN" / "scene.tif"
  return (["--mode=predict", f"--ms={ms}", f"--pan={pan}", f"--out={root}/f.tif",
           "--config.predict.nodata=-9999"],
          f"{ms}: config.predict.nodata=-9999 cannot occur in uint16 data")


def wrong_dtype_range(root):
  fixtures.geotiff_pair(str(root), max_value=4095)
  return _geo(root), (f"{root}/MS/scene.tif: wrong dtype range: values up to "
                      "4095 exceed data.max_value=2047")


def geotiff_no_overlap_adapt(root):
  """--mode=adapt: the same checks as predict, before any fine-tuning."""
  overrides, message = geotiff_no_overlap_predict(root)
  return ["--mode=adapt", *overrides[1:]], message


def image_smaller_than_metric_window(root):
  """Found before the first step, not at the final validation."""
  del root
  return (["--config.data.image_size=16", "--config.data.synthetic.scene_size=16"],
          "val split: images of 16x16 px are smaller than the 32x32 px window of the "
          "reduced-resolution indices")


def h5_images_smaller_than_metric_window(root):
  os.makedirs(root)
  for split in ("train", "val"):
    fixtures.pancollection_file(str(root / f"{split}.h5"), size=16)
  return (["--config.data.source=h5", f"--config.data.train_file={root}/train.h5",
           f"--config.data.val_file={root}/val.h5", "--config.data.image_size=16"],
          "val split: images of 16x16 px are smaller")


def predict_flags_missing(root):
  del root
  return ["--mode=predict", "--ms=a.tif"], "--mode=predict needs --pan, --out"


def adapt_flags_missing(root):
  del root
  return ["--mode=adapt", "--out=f.tif"], "--mode=adapt needs --ms, --pan"


@pytest.mark.parametrize("make_case", [
    missing_folder, unmatched_names, wrong_band_count, pan_not_ratio_times_ms,
    corrupt_image, nan_values, empty_split, h5_missing_key,
    geotiff_no_overlap_predict, geotiff_no_overlap_adapt,
    geotiff_other_crs_no_overlap_predict, nodata_outside_dtype_predict,
    wrong_dtype_range, image_smaller_than_metric_window,
    h5_images_smaller_than_metric_window, predict_flags_missing, adapt_flags_missing])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make_case):
  overrides, message = make_case(tmp_path / "data")
  args = [sys.executable, "main.py", "--config", "configs/default.py",
          f"--workdir={tmp_path / 'run'}", *SMALL, *overrides]
  result = subprocess.run(args, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr
