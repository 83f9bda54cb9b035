"""TIFF and GeoTIFF basics: pixel layouts, headers, the common area of a
georeferenced MS + PAN pair (read as stored when its grids line up, else
through a grid the MS is warped onto), and the copy into a Cloud-Optimized
GeoTIFF.

rasterio (the `[geo]` extra) is optional: `rasterio` is None without it, and
`data/scene.py` then reads pairs with tifffile alone.
"""

import contextlib
import warnings

import numpy as np
import tifffile

from pansharp_jax.data import checks
from pansharp_jax.errors import DataError, require

try:
  from affine import Affine
  import rasterio
  from rasterio.errors import NotGeoreferencedWarning
  from rasterio import shutil as rio_shutil
  from rasterio import warp
  from rasterio.enums import MaskFlags, Resampling
  from rasterio.vrt import WarpedVRT
except ImportError:  # The `[geo]` extra is optional.
  rasterio = None

TIFF_EXTENSIONS = (".tif", ".tiff")
# GDAL block cache while a scene is read or written by windows, in MB: the
# default (5% of the RAM) would keep every block touched.
GDAL_CACHE_MB = 64
# Relative tolerance for pixel sizes and grid positions.
_TOL = 1e-3
# Relative difference of MS pixel / PAN pixel from the ratio up to which the
# MS is resampled onto the PAN grid; beyond it the ratio is taken to be wrong.
_WARP_TOL = 0.1


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


def _north_up(transform) -> bool:
  return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


def _pixel_ratio_ok(ms_pixel, pan_tf, ratio, tolerance, where=None) -> bool:
  """Whether MS pixel sizes (x, y) are `ratio` PAN pixels within `tolerance`
  (relative); with `where`, a mismatch is a DataError."""
  ok = all(abs(m / ratio - p) <= tolerance * abs(p)
           for m, p in zip(ms_pixel, (pan_tf.a, -pan_tf.e)))
  require(ok or where is None, where,
          f"PAN pixel size {pan_tf.a:g} x {-pan_tf.e:g} is not MS pixel size "
          f"{ms_pixel[0]:g} x {ms_pixel[1]:g} / ratio {ratio}")
  return ok


def aligned(ms, pan, ratio) -> bool:
  """Whether two open datasets share a CRS and north-up grids `ratio` apart,
  so the MS is read as stored (else it is resampled: `warp_grid`)."""
  return (ms.crs == pan.crs and _north_up(ms.transform) and _north_up(pan.transform)
          and _pixel_ratio_ok((ms.transform.a, -ms.transform.e), pan.transform, ratio, _TOL))


def overlap_window(ms_shape, ms_tf, pan_shape, pan_tf, ratio, where):
  """MS window (row, col, rows, cols) and PAN offset (row, col) of the common
  area of an `aligned` pair."""
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


def warp_grid(ms, pan, ratio, where):
  """The grid to resample the MS of an open pair onto: MS pixels of `ratio` x
  `ratio` PAN pixels over the common area (whole MS pixels inside both).

  Returns the PAN offset (row, col) of the common area, its size in MS pixels
  (rows, cols) and the MS grid's transform (in the PAN's CRS).
  """
  pan_tf = pan.transform
  require(_north_up(pan_tf), where, "only north-up PAN geotransforms are supported")
  natural, _, _ = warp.calculate_default_transform(ms.crs, pan.crs, ms.width, ms.height,
                                                   *ms.bounds)
  _pixel_ratio_ok((natural.a, -natural.e), pan_tf, ratio, _WARP_TOL, where)
  left, bottom, right, top = warp.transform_bounds(ms.crs, pan.crs, *ms.bounds,
                                                   densify_pts=21)
  col0 = max(0, int(np.ceil((left - pan_tf.c) / pan_tf.a - _TOL)))
  col1 = min(pan.width, int(np.floor((right - pan_tf.c) / pan_tf.a + _TOL)))
  row0 = max(0, int(np.ceil((top - pan_tf.f) / pan_tf.e - _TOL)))
  row1 = min(pan.height, int(np.floor((bottom - pan_tf.f) / pan_tf.e + _TOL)))
  rows, cols = (row1 - row0) // ratio, (col1 - col0) // ratio
  require(rows > 0 and cols > 0, where, "extents do not overlap")
  transform = Affine(ratio * pan_tf.a, 0.0, pan_tf.c + col0 * pan_tf.a,
                     0.0, ratio * pan_tf.e, pan_tf.f + row0 * pan_tf.e)
  return (row0, col0), (rows, cols), transform


def warped(ms, crs, grid, shape, nodata_value=None):
  """The open MS resampled bilinearly onto `grid` (rows, cols = `shape`) as a
  virtual dataset. Outside the MS footprint is nodata: `nodata_value` where
  given, else 0 in an alpha band added after the MS bands."""
  fill = ({"src_nodata": nodata_value, "nodata": nodata_value}
          if nodata_value is not None else {"add_alpha": True, "init_dest_nodata": False})
  return WarpedVRT(ms, crs=crs, transform=grid, height=shape[0], width=shape[1],
                   resampling=Resampling.bilinear, **fill)


def marks_nodata(src) -> bool:
  """Whether an open dataset has a nodata tag, mask band or alpha band."""
  return any(flags != [MaskFlags.all_valid] for flags in src.mask_flag_enums)


def moved(pan_tf, pan_offset):
  """The PAN transform moved to the common area (north-up: whole pixels)."""
  return Affine(pan_tf.a, 0.0, pan_tf.c + pan_offset[1] * pan_tf.a,
                0.0, pan_tf.e, pan_tf.f + pan_offset[0] * pan_tf.e)


def small_cache():
  """A rasterio environment with GDAL's block cache at GDAL_CACHE_MB, so
  memory stays flat whatever the scene size (a no-op without rasterio)."""
  if rasterio is None:
    return contextlib.nullcontext()
  return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def copy_as_cog(src_path: str, path: str, compress: str, block: int) -> None:
  """Copies a GeoTIFF into a Cloud-Optimized GeoTIFF: block x block tiles,
  `compress` (deflate | lzw | none) with a predictor (horizontal differencing;
  floating point for floats), and overviews averaged without the nodata
  pixels. GDAL >= 3.1 (every rasterio >= 1.3) has the COG driver."""
  options = {"COMPRESS": compress.upper()}
  if compress != "none":
    options["PREDICTOR"] = "YES"
  with warnings.catch_warnings():  # a scene without georeference stays so
    warnings.simplefilter("ignore", NotGeoreferencedWarning)
    rio_shutil.copy(src_path, path, driver="COG", BLOCKSIZE=block,
                    OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER", **options)
