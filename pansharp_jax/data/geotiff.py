"""GeoTIFF scenes: reading and writing with georeference, and Wald training tiles.

rasterio (the `[geo]` extra) reads and writes CRS and geotransform. Without it,
tifffile reads the pixels only, and a pair must then match exactly in size
(PAN = ratio x MS) because extents cannot be compared.

A scene pair is an MS GeoTIFF and a PAN GeoTIFF of the same area. `read_pair`
checks that their extents overlap and that the PAN pixel is `ratio` times
finer, then crops both to the common area on the MS pixel grid.

`GeoTiffWaldSource` makes training data from a user's full-resolution scenes
(ROOT/MS/<scene>.tif + ROOT/PAN/<scene>.tif): each scene is degraded once by
Wald's protocol (the original MS becomes GT), then cut into non-overlapping
tiles of `tile_size` GT pixels. Degrading the whole scene (rather than each
tile) keeps tile borders free of filter padding artefacts. Per scene the last
tenth of the tile rows (at least one row) is held out for val/test, so held-out
tiles never share pixels with training tiles.
"""

from typing import NamedTuple
import warnings

import numpy as np
import tifffile

from pansharp_jax.data import checks, wald
from pansharp_jax.data.errors import DataError, require

try:
  from affine import Affine
  import rasterio
  from rasterio.errors import NotGeoreferencedWarning
except ImportError:  # The `[geo]` extra is optional.
  rasterio = None

TIFF_EXTENSIONS = (".tif", ".tiff")
# Relative tolerance for pixel sizes and grid positions.
_TOL = 1e-3


def _as_hwc(array: np.ndarray, axes: str, path: str) -> np.ndarray:
  """(H, W, C) view of a tifffile series with `axes` such as 'YX', 'YXS', 'SYX'."""
  if axes == "YX":
    return array[..., None]
  if axes == "YXS":
    return array
  if len(axes) == 3 and axes.endswith("YX"):  # band-sequential: one plane per band
    return np.moveaxis(array, 0, -1)
  raise DataError(f"{path}: unsupported TIFF layout (axes {axes}, shape {array.shape})")


def tiff_header(path: str) -> tuple[tuple[int, int, int], np.dtype]:
  """(H, W, C) and dtype of a TIFF without decoding its pixels."""
  with checks.readable(path), tifffile.TiffFile(path) as tif:
    series = tif.series[0]
    # A zero-stride array of the series' shape: the layout logic without the pixels.
    shape = _as_hwc(np.broadcast_to(np.zeros((), series.dtype), series.shape),
                    series.axes, path).shape
    return shape, series.dtype


def read_tiff(path: str) -> np.ndarray:
  """(H, W, C) pixels of a TIFF in its stored dtype (no georeference)."""
  with checks.readable(path), tifffile.TiffFile(path) as tif:
    series = tif.series[0]
    return np.ascontiguousarray(_as_hwc(series.asarray(), series.axes, path))


def read_geotiff(path: str) -> tuple[np.ndarray, dict]:
  """(H, W, C) pixels and a profile dict with 'crs' and 'transform'.

  Both are None for a TIFF without georeference, or without rasterio.
  """
  if rasterio is None:
    array = read_tiff(path)
    return array, {"crs": None, "transform": None,
                   "height": array.shape[0], "width": array.shape[1]}
  with checks.readable(path, "GeoTIFF"), warnings.catch_warnings():
    warnings.simplefilter("ignore", NotGeoreferencedWarning)
    with rasterio.open(path) as src:
      array = np.moveaxis(src.read(), 0, -1)
      profile = dict(src.profile)
  if profile["crs"] is None and profile["transform"].is_identity:
    profile.update(crs=None, transform=None)
  return array, profile


def write_geotiff(path: str, array: np.ndarray, profile_like: dict | None = None) -> None:
  """Writes (H, W, C) or (H, W) `array` with the CRS and transform of `profile_like`.

  Args:
    path: output file.
    array: pixels in the dtype to store.
    profile_like: a profile from `read_geotiff`/`read_pair` (its size and
      dtype are ignored), or None for no georeference.
  """
  array = np.asarray(array)
  if array.ndim == 2:
    array = array[..., None]
  crs = (profile_like or {}).get("crs")
  transform = (profile_like or {}).get("transform")
  if rasterio is None:
    require(crs is None and transform is None, path,
            "writing a georeferenced GeoTIFF needs rasterio "
            "(pip install 'pansharp_jax[geo]')")
    tifffile.imwrite(path, array[..., 0] if array.shape[-1] == 1 else array,
                     photometric="minisblack", planarconfig="contig")
    return
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", NotGeoreferencedWarning)
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[0],
                       width=array.shape[1], count=array.shape[-1],
                       dtype=array.dtype, crs=crs, transform=transform) as dst:
      dst.write(np.moveaxis(array, -1, 0))


class ScenePair(NamedTuple):
  """Co-registered MS (h, w, C) and PAN (ratio*h, ratio*w, 1), stored dtypes."""
  ms: np.ndarray
  pan: np.ndarray
  profile: dict  # the PAN profile of the common area: georeference for outputs


def _north_up(transform, where: str) -> None:
  require(transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0,
          where, "only north-up geotransforms are supported")


def _overlap_window(ms_shape, ms_tf, pan_shape, pan_tf, ratio, where):
  """MS window (row, col, rows, cols) and PAN offset (row, col) of the common area."""
  _north_up(ms_tf, where)
  _north_up(pan_tf, where)
  pixel_ok = all(abs(m / ratio - p) <= _TOL * abs(p)
                 for m, p in ((ms_tf.a, pan_tf.a), (ms_tf.e, pan_tf.e)))
  require(pixel_ok, where,
          f"PAN pixel size {pan_tf.a:g} x {-pan_tf.e:g} is not MS pixel size "
          f"{ms_tf.a:g} x {-ms_tf.e:g} / ratio {ratio}")
  left = max(ms_tf.c, pan_tf.c)
  right = min(ms_tf.c + ms_tf.a * ms_shape[1], pan_tf.c + pan_tf.a * pan_shape[1])
  top = min(ms_tf.f, pan_tf.f)
  bottom = max(ms_tf.f + ms_tf.e * ms_shape[0], pan_tf.f + pan_tf.e * pan_shape[0])
  # Whole MS pixels inside the common area.
  col0 = int(np.ceil((left - ms_tf.c) / ms_tf.a - _TOL))
  col1 = int(np.floor((right - ms_tf.c) / ms_tf.a + _TOL))
  row0 = int(np.ceil((top - ms_tf.f) / ms_tf.e - _TOL))
  row1 = int(np.floor((bottom - ms_tf.f) / ms_tf.e + _TOL))
  pan_col = max(0, round((ms_tf.c + col0 * ms_tf.a - pan_tf.c) / pan_tf.a))
  pan_row = max(0, round((ms_tf.f + row0 * ms_tf.e - pan_tf.f) / pan_tf.e))
  # Rounding onto a sub-pixel shifted PAN grid may leave the last MS pixel short.
  cols = min(col1 - col0, (pan_shape[1] - pan_col) // ratio)
  rows = min(row1 - row0, (pan_shape[0] - pan_row) // ratio)
  require(rows > 0 and cols > 0, where, "extents do not overlap")
  return (row0, col0, rows, cols), (pan_row, pan_col)


def read_pair(ms_path: str, pan_path: str, ratio: int) -> ScenePair:
  """Reads an MS and a PAN GeoTIFF and crops both to their common area."""
  where = f"{ms_path}, {pan_path}"
  ms, ms_profile = read_geotiff(ms_path)
  pan, pan_profile = read_geotiff(pan_path)
  pan = checks.single_band_pan(pan, pan_path)
  ms_tf, pan_tf = ms_profile["transform"], pan_profile["transform"]
  require((ms_tf is None) == (pan_tf is None), where,
          "only one of the pair is georeferenced")
  if ms_tf is None:
    checks.require_pan_size(ms.shape[:2], pan.shape[:2], ratio, where)
    return ScenePair(ms, pan, pan_profile)
  require(ms_profile["crs"] == pan_profile["crs"], where,
          f"different CRS ({ms_profile['crs']} vs {pan_profile['crs']})")
  (row, col, rows, cols), (pan_row, pan_col) = _overlap_window(
      ms.shape, ms_tf, pan.shape, pan_tf, ratio, where)
  ms = ms[row:row + rows, col:col + cols]
  pan = pan[pan_row:pan_row + ratio * rows, pan_col:pan_col + ratio * cols]
  # North-up, so moving the origin by whole pixels is the whole change.
  transform = Affine(pan_tf.a, 0.0, pan_tf.c + pan_col * pan_tf.a,
                     0.0, pan_tf.e, pan_tf.f + pan_row * pan_tf.e)
  profile = dict(pan_profile, height=pan.shape[0], width=pan.shape[1],
                 transform=transform)
  return ScenePair(ms, pan, profile)


def _held_out_rows(rows: int) -> int:
  """Tile rows kept for val/test: the last tenth, at least one when rows allow."""
  return rows // 10 if rows >= 10 else min(1, rows - 1)


class GeoTiffWaldSource:
  """Reduced-resolution training tiles made from full-resolution GeoTIFF scenes.

  All scenes are read and degraded when the source is built and kept in memory
  as float32 ({gt, lms} at MS size, ms at MS/ratio, pan at MS size).
  """

  name = "geotiff"

  def __init__(self, root: str, split: str, *, num_bands: int, ratio: int,
               max_value: float, sensor: str, tile_size: int):
    stems, files = checks.match_stems(
        {"MS": f"{root}/MS", "PAN": f"{root}/PAN"}, TIFF_EXTENSIONS, where=root)
    require(bool(stems), root, "no GeoTIFF scenes in MS/ and PAN/")
    try:  # an unknown sensor, or one with another band count, fails before any reading
      wald.mtf_kernels(sensor, num_bands, ratio)
    except ValueError as e:
      raise DataError(f"config.data.sensor: {e}") from e
    self.num_bands, self.ratio, self.tile = num_bands, ratio, tile_size
    self._scenes, self._tiles = [], []
    dtype = None
    for stem in stems:
      ms_path, pan_path = files["MS"][stem], files["PAN"][stem]
      pair = read_pair(ms_path, pan_path, ratio)
      checks.require_bands(pair.ms.shape[-1], num_bands, ms_path)
      if dtype is None:  # the first scene fixes the bit depth of the dataset
        dtype = pair.ms.dtype
        self.max_value = checks.max_value_for(dtype, max_value)
      checks.require_same_dtype(pair.ms.dtype, dtype, ms_path)
      checks.require_same_dtype(pair.pan.dtype, dtype, pan_path)
      rows, cols = (n // tile_size for n in pair.ms.shape[:2])
      require(rows > 0 and cols > 0, ms_path,
              f"MS of {pair.ms.shape[0]}x{pair.ms.shape[1]} px is smaller than "
              f"one data.image_size={tile_size} px tile")
      height, width = rows * tile_size, cols * tile_size
      gt = checks.to_unit(pair.ms[:height, :width], self.max_value, ms_path)
      pan = checks.to_unit(pair.pan[:ratio * height, :ratio * width],
                           self.max_value, pan_path)
      scene = wald.wald_degrade(gt, pan, sensor, ratio)
      self._scenes.append({"gt": gt, "ms": scene["ms"], "pan": scene["pan"],
                           "lms": np.clip(scene["lms"], 0.0, 1.0)})
      held_out = _held_out_rows(rows)
      split_rows = range(rows - held_out) if split == "train" else range(rows - held_out, rows)
      self._tiles += [(len(self._scenes) - 1, r, c) for r in split_rows for c in range(cols)]
    require(bool(self._tiles), root,
            f"empty {split} split (each scene gives val/test one row of "
            f"{tile_size} px tiles, so it needs at least 2 rows)")

  def __len__(self) -> int:
    return len(self._tiles)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    scene, row, col = self._tiles[index]
    size = self.tile
    out = {}
    for key, array in self._scenes[scene].items():
      step = size // self.ratio if key == "ms" else size
      out[key] = np.ascontiguousarray(
          array[row * step:(row + 1) * step, col * step:(col + 1) * step], np.float32)
    return out
