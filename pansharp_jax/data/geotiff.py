"""TIFF and GeoTIFF basics: pixel layouts, headers, and the common area of a
georeferenced MS + PAN pair.

rasterio (the `[geo]` extra) is optional: `rasterio` is None without it, and
`data/scene.py` then reads pairs with tifffile alone.
"""

import numpy as np
import tifffile

from pansharp_jax.data import checks
from pansharp_jax.errors import DataError, require

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


def _north_up(transform, where: str) -> None:
  require(transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0,
          where, "only north-up geotransforms are supported")


def overlap_window(ms_shape, ms_tf, pan_shape, pan_tf, ratio, where):
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
