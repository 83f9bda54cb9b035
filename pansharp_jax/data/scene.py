"""MS + PAN scenes read by windows, and fused scenes written by rows.

A scene is an MS and a PAN image of the same area, PAN `ratio` times finer.
`GeoTiffScene` opens a GeoTIFF pair lazily through rasterio: it checks that
the extents overlap and the pixel sizes match the ratio, then exposes the
common area on the MS pixel grid, reading only the windows asked for.
`read_pair` reads that common area whole (training tiles are cut from it).
Without rasterio (the `[geo]` extra) both files are read whole with tifffile
and must match exactly in size, since extents cannot be compared.

`SceneWriter` writes the fused scene in rows, in sensor units and the MS
dtype, with the PAN common area's georeference.
"""

import os
from typing import NamedTuple
import warnings

import numpy as np
import tifffile

from pansharp_jax.data import checks, geotiff
from pansharp_jax.errors import require

try:
  from rasterio.windows import Window
except ImportError:  # The `[geo]` extra is optional.
  Window = None


class Scene:
  """An MS + PAN pair read by windows.

  Coordinates are PAN pixels of the pair's common area (MS pixels for the MS
  readers). `ms_window`/`pan_window` return stored values of in-bounds
  windows; `read_ms`/`read_pan` return float32 in [0, 1], mirrored where the
  window leaves the scene. Subclasses implement the two raw readers.
  """

  ratio: int
  height: int           # PAN pixels
  width: int
  num_bands: int
  dtype: np.dtype       # the MS dtype, also the output's
  max_value: float      # sensor units of 1.0
  profile: dict         # georeference of the PAN common area
  ms_where: str = "MS"
  pan_where: str = "PAN"

  def ms_window(self, row, col, rows, cols) -> np.ndarray:
    raise NotImplementedError

  def pan_window(self, row, col, rows, cols) -> np.ndarray:
    raise NotImplementedError

  def read_ms(self, row, col, rows, cols) -> np.ndarray:
    """MS window in MS pixels, mirrored where it leaves the scene."""
    h, w = self.height // self.ratio, self.width // self.ratio
    r0, r1 = max(row, 0), min(row + rows, h)
    c0, c1 = max(col, 0), min(col + cols, w)
    ms = checks.to_unit(self.ms_window(r0, c0, r1 - r0, c1 - c0), self.max_value,
                        self.ms_where)
    pad = ((r0 - row, row + rows - r1), (c0 - col, col + cols - c1), (0, 0))
    return np.pad(ms, pad, mode="symmetric") if np.any(pad) else ms

  def read_pan(self, row, col, rows, cols) -> np.ndarray:
    """PAN window (in-bounds origin), mirrored past the bottom/right border."""
    r1, c1 = min(row + rows, self.height), min(col + cols, self.width)
    pan = checks.to_unit(self.pan_window(row, col, r1 - row, c1 - col),
                         self.max_value, self.pan_where)
    pad = ((0, row + rows - r1), (0, col + cols - c1), (0, 0))
    return np.pad(pan, pad, mode="symmetric") if np.any(pad) else pan

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class ArrayScene(Scene):
  """A scene held in memory: (h, w, C) MS and (ratio*h, ratio*w, 1) PAN in
  sensor units (small scenes, and GeoTIFFs read without rasterio)."""

  def __init__(self, ms, pan, ratio, max_value, profile=None):
    checks.require_pan_size(ms.shape[:2], pan.shape[:2], ratio, "scene")
    self._ms_array, self._pan_array = ms, pan
    self.ratio, self.max_value = ratio, float(max_value)
    self.height, self.width = pan.shape[:2]
    self.num_bands, self.dtype = ms.shape[-1], ms.dtype
    self.profile = profile or {"crs": None, "transform": None}

  def ms_window(self, row, col, rows, cols):
    return self._ms_array[row:row + rows, col:col + cols]

  def pan_window(self, row, col, rows, cols):
    return self._pan_array[row:row + rows, col:col + cols]


def _pan_transform(pan_tf, pan_offset):
  """The PAN transform moved to the common area (north-up: whole pixels)."""
  return geotiff.Affine(pan_tf.a, 0.0, pan_tf.c + pan_offset[1] * pan_tf.a,
                        0.0, pan_tf.e, pan_tf.f + pan_offset[0] * pan_tf.e)


class GeoTiffScene(Scene):
  """An MS + PAN GeoTIFF pair cropped to its common area (module docstring).

  max_value: sensor units of 1.0 for 16-bit data (8-bit data is /255).
  """

  def __init__(self, ms_path, pan_path, ratio, max_value=2047.0):
    self.ms_where, self.pan_where, self.ratio = ms_path, pan_path, ratio
    where = f"{ms_path}, {pan_path}"
    self._ms_offset = self._pan_offset = (0, 0)
    self._inner = None
    if geotiff.rasterio is None:
      ms = geotiff.read_tiff(ms_path)
      pan = checks.single_band_pan(geotiff.read_tiff(pan_path), pan_path)
      checks.require_pan_size(ms.shape[:2], pan.shape[:2], ratio, where)
      self._inner = ArrayScene(ms, pan, ratio, 1.0)
      ms_hw, self.num_bands, self.dtype = ms.shape[:2], ms.shape[-1], ms.dtype
      self.profile = self._inner.profile
    else:
      self._ms_src = self._open(ms_path)
      self._pan_src = self._open(pan_path)
      ms_hw = self._locate(where)
      self.num_bands = self._ms_src.count
      self.dtype = np.dtype(self._ms_src.dtypes[0])
      require(self._pan_src.count in (1, 3), pan_path,
              f"PAN has {self._pan_src.count} bands, expected 1")
      checks.require_same_dtype(self._pan_src.dtypes[0], self.dtype, pan_path)
    self.height, self.width = ratio * ms_hw[0], ratio * ms_hw[1]
    self.max_value = checks.max_value_for(self.dtype, max_value)

  def _locate(self, where):
    """Sets the window offsets and profile of the common area; its MS size."""
    ms, pan = self._ms_src, self._pan_src
    georef = [not (s.crs is None and s.transform.is_identity) for s in (ms, pan)]
    require(georef[0] == georef[1], where, "only one of the pair is georeferenced")
    ms_shape, pan_shape = (ms.height, ms.width), (pan.height, pan.width)
    if not georef[0]:
      checks.require_pan_size(ms_shape, pan_shape, self.ratio, where)
      self.profile = {"crs": None, "transform": None}
      return ms_shape
    require(ms.crs == pan.crs, where, f"different CRS ({ms.crs} vs {pan.crs})")
    (r0, c0, rows, cols), self._pan_offset = geotiff.overlap_window(
        ms_shape, ms.transform, pan_shape, pan.transform, self.ratio, where)
    self._ms_offset = (r0, c0)
    self.profile = {"crs": pan.crs,
                    "transform": _pan_transform(pan.transform, self._pan_offset)}
    return rows, cols

  @staticmethod
  def _open(path):
    with checks.readable(path, "GeoTIFF"), warnings.catch_warnings():
      warnings.simplefilter("ignore", geotiff.NotGeoreferencedWarning)
      return geotiff.rasterio.open(path)

  def _read(self, src, path, offset, row, col, rows, cols):
    window = Window(col + offset[1], row + offset[0], cols, rows)
    with checks.readable(path, "GeoTIFF"):
      return np.moveaxis(src.read(window=window), 0, -1)

  def ms_window(self, row, col, rows, cols):
    if self._inner is not None:
      return self._inner.ms_window(row, col, rows, cols)
    return self._read(self._ms_src, self.ms_where, self._ms_offset, row, col, rows, cols)

  def pan_window(self, row, col, rows, cols):
    if self._inner is not None:
      return self._inner.pan_window(row, col, rows, cols)
    pan = self._read(self._pan_src, self.pan_where, self._pan_offset, row, col, rows, cols)
    return checks.single_band_pan(pan, self.pan_where)

  def close(self):
    if self._inner is None:
      self._ms_src.close()
      self._pan_src.close()


class ScenePair(NamedTuple):
  """Co-registered MS (h, w, C) and PAN (ratio*h, ratio*w, 1), stored dtypes."""
  ms: np.ndarray
  pan: np.ndarray
  profile: dict  # the PAN common area's georeference (crs, transform, height, width)


def read_pair(ms_path: str, pan_path: str, ratio: int) -> ScenePair:
  """The common area of an MS and a PAN GeoTIFF, read whole."""
  with GeoTiffScene(ms_path, pan_path, ratio) as scene:
    ms = scene.ms_window(0, 0, scene.height // ratio, scene.width // ratio)
    pan = scene.pan_window(0, 0, scene.height, scene.width)
    profile = dict(scene.profile, height=scene.height, width=scene.width)
  return ScenePair(ms, pan, profile)


class SceneWriter:
  """Writes rows of a fused scene (float in [0, 1]) in sensor units and the
  MS dtype, as a GeoTIFF with the scene's georeference."""

  def __init__(self, path: str, scene: Scene):
    self.path, self.scene = path, scene
    shape = (scene.height, scene.width, scene.num_bands)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if geotiff.rasterio is None:
      require(scene.profile.get("crs") is None, path,
              "writing a georeferenced GeoTIFF needs rasterio "
              "(pip install 'pansharp_jax[geo]')")
      self._dst = None
      self._memmap = tifffile.memmap(path, shape=shape, dtype=scene.dtype,
                                     photometric="minisblack", planarconfig="contig")
    else:
      block = {"tiled": True, "blockxsize": 256, "blockysize": 256} if min(
          shape[:2]) >= 256 else {}
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", geotiff.NotGeoreferencedWarning)
        self._dst = geotiff.rasterio.open(
            path, "w", driver="GTiff", height=shape[0], width=shape[1],
            count=shape[2], dtype=scene.dtype, crs=scene.profile.get("crs"),
            transform=scene.profile.get("transform"), BIGTIFF="IF_SAFER", **block)

  def to_sensor(self, unit: np.ndarray) -> np.ndarray:
    """[0, 1] float to the MS dtype: scaled, and rounded + clipped for integers."""
    values = unit * self.scene.max_value
    dtype = np.dtype(self.scene.dtype)
    if dtype.kind in "iu":
      info = np.iinfo(dtype)
      return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)

  def write(self, row: int, unit_rows: np.ndarray) -> None:
    values = self.to_sensor(unit_rows)
    if self._dst is None:
      self._memmap[row:row + len(values)] = values
      return
    window = Window(0, row, values.shape[1], values.shape[0])
    self._dst.write(np.moveaxis(values, -1, 0), window=window)

  def close(self):
    if self._dst is None:
      self._memmap.flush()
      del self._memmap
    else:
      self._dst.close()
