"""MS + PAN scenes read by windows, and fused scenes written by rows.

A scene is an MS and a PAN image of the same area, PAN `ratio` times finer.
`GeoTiffScene` opens a GeoTIFF pair lazily through rasterio and exposes the
common area on the MS pixel grid, reading only the windows asked for. A pair
with one CRS and grids `ratio` apart is read as stored (a sub-pixel offset is
rounded to whole PAN pixels); otherwise the MS is resampled bilinearly onto a
grid of `ratio` x `ratio` PAN pixels (GDAL's warper) and a log line says so.
`open_scene` falls back to tifffile without rasterio (the `[geo]` extra).
The readers fill nodata pixels and return their mask (`data/nodata.py`).

`SceneWriter` writes the fused scene in rows, in sensor units and the MS
dtype, with the PAN common area's georeference and the nodata tag, then
copies it into a compressed Cloud-Optimized GeoTIFF with overviews.
"""

import os
from typing import NamedTuple
import warnings

from absl import logging
import numpy as np
import tifffile

from pansharp_jax.data import checks, geotiff, nodata, wald
from pansharp_jax.errors import require

try:
  from rasterio.windows import Window
except ImportError:  # The `[geo]` extra is optional.
  Window = None

# MS pixels read around a window for interp23tap: its two dyadic 23-tap steps
# reach 5.5 + 2.75 MS pixels; the rest keeps the filter's wrap-around away.
LMS_HALO = 12
# Output blocks (and the COG's tiles), in pixels.
BLOCK = 512
COMPRESSIONS = ("deflate", "lzw", "none")


class Inputs(NamedTuple):
  """A window of a scene as a model takes it (float32 in [0, 1], filled)."""
  ms: np.ndarray     # (rows / ratio, cols / ratio, C)
  lms: np.ndarray    # (rows, cols, C): interp23tap of the mirrored MS, not clipped
  pan: np.ndarray    # (rows, cols, 1)
  valid: np.ndarray  # (rows, cols) bool: the PAN and the upsampled MS are valid


def _padded(read, row, col, rows, cols, height, width):
  """The arrays `read(row, col, rows, cols)` returns for the in-bounds part of
  a window, padded with zeros (False) where the window leaves height x width."""
  r0, r1 = max(row, 0), min(row + rows, height)
  c0, c1 = max(col, 0), min(col + cols, width)
  arrays = read(r0, c0, r1 - r0, c1 - c0)
  pad = ((r0 - row, row + rows - r1), (c0 - col, col + cols - c1))
  if not np.any(pad):
    return arrays
  return tuple(np.pad(a, pad + ((0, 0),) * (a.ndim - 2)) for a in arrays)


class Scene:
  """An MS + PAN pair read by windows.

  Coordinates are PAN pixels of the pair's common area (MS pixels for the MS
  readers). `ms_window`/`pan_window` return stored values of in-bounds
  windows (subclasses implement them); `read_ms`/`read_pan` return float32 in
  [0, 1] and the valid mask of any window: pixels outside the scene count as
  invalid, and invalid pixels are filled (`nodata.fill`), which mirrors the
  scene's edges as it mirrors the edges of nodata.
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
  nodata: float | None = None    # explicit nodata value (None: the files' marks)
  zero_is_nodata: bool = False
  output_nodata: float | None = None  # the output's nodata tag (None: no nodata)
  band_names: tuple = ()

  def ms_window(self, row, col, rows, cols) -> np.ndarray:
    raise NotImplementedError

  def pan_window(self, row, col, rows, cols) -> np.ndarray:
    raise NotImplementedError

  def file_masks(self, image, row, col, rows, cols) -> np.ndarray | None:
    """GDAL masks (0: nodata) the file of `image` ('ms' or 'pan') holds for
    a window, or None when it marks nothing."""
    del image, row, col, rows, cols
    return None

  def _in_bounds(self, image, row, col, rows, cols):
    """(values, valid) of an in-bounds window of `image`, not filled."""
    raw = (self.ms_window if image == "ms" else self.pan_window)(row, col, rows, cols)
    masks = None if self.nodata is not None else self.file_masks(image, row, col, rows, cols)
    invalid = nodata.invalid_pixels(raw, self.nodata, self.zero_is_nodata, masks)
    if invalid.any():  # nodata values may lie outside the data range
      raw = np.where(invalid[..., None], 0, raw)
    where = self.ms_where if image == "ms" else self.pan_where
    return checks.to_unit(raw, self.max_value, where), ~invalid

  def _read(self, image, row, col, rows, cols, height, width):
    values, valid = _padded(lambda *w: self._in_bounds(image, *w), row, col, rows, cols,
                            height, width)
    return nodata.fill(values, valid), valid

  def read_ms(self, row, col, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """MS window in MS pixels: (values, valid)."""
    return self._read("ms", row, col, rows, cols, self.height // self.ratio,
                      self.width // self.ratio)

  def read_pan(self, row, col, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """PAN window: (values, valid)."""
    return self._read("pan", row, col, rows, cols, self.height, self.width)

  def read_inputs(self, row, col, rows, cols) -> Inputs:
    """A window at PAN (row, col), multiples of the ratio; `lms` is interp23tap
    of the MS window with LMS_HALO MS pixels around it, so it equals the
    whole-scene upsampling (mirrored by the same halo) on every window;
    pixels outside the scene are not valid."""
    r, halo = self.ratio, LMS_HALO
    ms, ms_valid = self.read_ms(row // r - halo, col // r - halo,
                                rows // r + 2 * halo, cols // r + 2 * halo)
    lms = wald.interp23tap(ms, r)[r * halo:r * halo + rows, r * halo:r * halo + cols]
    pan, pan_valid = self.read_pan(row, col, rows, cols)
    inner = ms_valid[halo:-halo, halo:-halo]
    valid = pan_valid & np.repeat(np.repeat(inner, r, 0), r, 1)
    return Inputs(ms[halo:-halo, halo:-halo], lms.astype(np.float32), pan, valid)

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class ArrayScene(Scene):
  """A scene held in memory: (h, w, C) MS and (ratio*h, ratio*w, 1) PAN in
  sensor units (small scenes, and GeoTIFFs read without rasterio)."""

  def __init__(self, ms, pan, ratio, max_value, profile=None, *, nodata_value=None,
               zero_is_nodata=False):
    checks.require_pan_size(ms.shape[:2], pan.shape[:2], ratio, "scene")
    self._ms_array, self._pan_array = ms, pan
    self.ratio, self.max_value = ratio, float(max_value)
    self.height, self.width = pan.shape[:2]
    self.num_bands, self.dtype = ms.shape[-1], ms.dtype
    self.profile = profile or {"crs": None, "transform": None}
    self.nodata, self.zero_is_nodata = nodata_value, zero_is_nodata
    if nodata_value is not None or zero_is_nodata:
      self.output_nodata = nodata.output_value(self.dtype, nodata_value)

  def ms_window(self, row, col, rows, cols):
    return self._ms_array[row:row + rows, col:col + cols]

  def pan_window(self, row, col, rows, cols):
    return self._pan_array[row:row + rows, col:col + cols]


def _open(path):
  """A GeoTIFF opened with rasterio, georeferenced or not."""
  with checks.readable(path, "GeoTIFF"), warnings.catch_warnings():
    warnings.simplefilter("ignore", geotiff.NotGeoreferencedWarning)
    return geotiff.rasterio.open(path)


class GeoTiffScene(Scene):
  """An MS + PAN GeoTIFF pair cropped to its common area (module docstring).

  max_value: sensor units of 1.0 for 16-bit data (8-bit data is /255).
  nodata_value: the nodata value of both files, replacing their tags.
  zero_is_nodata: pixels 0 in every band are nodata too.
  """

  def __init__(self, ms_path, pan_path, ratio, max_value=2047.0, *, nodata_value=None,
               zero_is_nodata=False):
    self.ms_where, self.pan_where, self.ratio = ms_path, pan_path, ratio
    self.nodata, self.zero_is_nodata = nodata_value, zero_is_nodata
    self._offsets = {"ms": (0, 0), "pan": (0, 0)}
    ms, pan = _open(ms_path), _open(pan_path)
    self._sources = {"ms": ms, "pan": pan}
    self.num_bands, self.dtype = ms.count, np.dtype(ms.dtypes[0])
    self.band_names = ms.descriptions
    require(pan.count in (1, 3), pan_path, f"PAN has {pan.count} bands, expected 1")
    checks.require_same_dtype(pan.dtypes[0], self.dtype, pan_path)
    if nodata_value is not None:
      require(nodata.representable(nodata_value, self.dtype), ms_path,
              f"config.predict.nodata={nodata_value:g} cannot occur in {self.dtype.name} data")
    marked = geotiff.marks_nodata(ms) or geotiff.marks_nodata(pan)
    ms_hw = self._locate(f"{ms_path}, {pan_path}")
    marked |= self._sources["ms"] is not ms  # warped: the MS footprint
    self.height, self.width = ratio * ms_hw[0], ratio * ms_hw[1]
    self.max_value = checks.max_value_for(self.dtype, max_value)
    if marked or nodata_value is not None or zero_is_nodata:
      self.output_nodata = nodata.output_value(
          self.dtype, nodata_value if nodata_value is not None else ms.nodata)

  def _locate(self, where):
    """Sets the window offsets and profile of the common area; its MS size."""
    ms, pan = self._sources["ms"], self._sources["pan"]
    georef = [not (s.crs is None and s.transform.is_identity) for s in (ms, pan)]
    require(georef[0] == georef[1], where, "only one of the pair is georeferenced")
    ms_shape, pan_shape = (ms.height, ms.width), (pan.height, pan.width)
    if not georef[0]:
      checks.require_pan_size(ms_shape, pan_shape, self.ratio, where)
      self.profile = {"crs": None, "transform": None}
      return ms_shape
    if geotiff.aligned(ms, pan, self.ratio):
      (r0, c0, rows, cols), self._offsets["pan"] = geotiff.overlap_window(
          ms_shape, ms.transform, pan_shape, pan.transform, self.ratio, where)
      self._offsets["ms"] = (r0, c0)
    else:
      self._offsets["pan"], (rows, cols), grid = geotiff.warp_grid(ms, pan, self.ratio, where)
      self._warp(grid, rows, cols)
    self.profile = {"crs": pan.crs,
                    "transform": geotiff.moved(pan.transform, self._offsets["pan"])}
    return rows, cols

  def _warp(self, grid, rows, cols):
    """Reads the MS through GDAL's warper onto `grid` (`geotiff.warped`)."""
    ms, pan = self._sources["ms"], self._sources["pan"]
    self._sources["ms"] = geotiff.warped(ms, pan.crs, grid, (rows, cols), self.nodata)
    self._sources["ms_file"] = ms  # closed with the VRT
    logging.info("%s: MS resampled (bilinear) onto the PAN grid of %s: %s", self.ms_where,
                 self.pan_where, "another CRS" if ms.crs != pan.crs
                 else "pixel sizes not ratio apart or a rotated grid")

  def _window(self, image, row, col, rows, cols):
    r0, c0 = self._offsets[image]
    return Window(col + c0, row + r0, cols, rows)

  def _raw(self, image, row, col, rows, cols, bands=None, masks=False):
    src = self._sources[image]
    bands = bands or list(range(1, (self.num_bands if image == "ms" else src.count) + 1))
    window = self._window(image, row, col, rows, cols)
    with checks.readable(self.ms_where if image == "ms" else self.pan_where, "GeoTIFF"):
      data = src.read_masks(bands, window=window) if masks else src.read(bands, window=window)
    return np.moveaxis(data, 0, -1)

  def ms_window(self, row, col, rows, cols):
    return self._raw("ms", row, col, rows, cols)

  def pan_window(self, row, col, rows, cols):
    return checks.single_band_pan(self._raw("pan", row, col, rows, cols), self.pan_where)

  def file_masks(self, image, row, col, rows, cols):
    src = self._sources[image]
    if "ms_file" in self._sources and image == "ms":  # warped: its alpha band
      return self._raw(image, row, col, rows, cols, bands=[src.count])
    if not geotiff.marks_nodata(src):
      return None
    return self._raw(image, row, col, rows, cols, masks=True)

  def close(self):
    for src in self._sources.values():
      src.close()


def open_scene(ms_path, pan_path, ratio, max_value=2047.0, **nodata_options) -> Scene:
  """The pair as a GeoTiffScene; without rasterio, plain TIFFs of exactly
  `ratio` x the MS size read whole with tifffile (extents cannot be compared).
  `nodata_options`: GeoTiffScene's nodata_value and zero_is_nodata."""
  if geotiff.rasterio is not None:
    return GeoTiffScene(ms_path, pan_path, ratio, max_value, **nodata_options)
  ms = geotiff.read_tiff(ms_path)
  pan = checks.single_band_pan(geotiff.read_tiff(pan_path), pan_path)
  checks.require_same_dtype(pan.dtype, ms.dtype, pan_path)  # as GeoTiffScene
  checks.require_pan_size(ms.shape[:2], pan.shape[:2], ratio, f"{ms_path}, {pan_path}")
  scene = ArrayScene(ms, pan, ratio, checks.max_value_for(ms.dtype, max_value),
                     **nodata_options)
  scene.ms_where, scene.pan_where = ms_path, pan_path
  return scene


class SceneWriter:
  """Writes rows of a fused scene (float in [0, 1]) in sensor units and the
  MS dtype, as a GeoTIFF with the scene's georeference and nodata tag.

  With rasterio, rows go to an uncompressed tiled file beside the output
  (`<out>.partial.tif`; rows land in blocks in place, so memory and disk stay
  flat), which `close` copies into a compressed Cloud-Optimized GeoTIFF with
  overviews (`geotiff.copy_as_cog`) and band descriptions. Without rasterio:
  an uncompressed TIFF written through a memory map, with the nodata tag but
  no georeference.
  """

  def __init__(self, path: str, scene: Scene, compress: str = "deflate"):
    self.path, self.scene, self.compress = path, scene, compress
    shape = (scene.height, scene.width, scene.num_bands)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    nodata_tag = scene.output_nodata
    if geotiff.rasterio is None:
      require(scene.profile.get("crs") is None, path,
              "writing a georeferenced GeoTIFF needs rasterio "
              "(pip install 'pansharp_jax[geo]')")
      tags = [] if nodata_tag is None else [(42113, "s", 0, f"{nodata_tag:g}", True)]
      self._dst = None
      self._memmap = tifffile.memmap(path, shape=shape, dtype=scene.dtype, extratags=tags,
                                     photometric="minisblack", planarconfig="contig")
      return
    self._partial = os.path.splitext(path)[0] + ".partial.tif"
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", geotiff.NotGeoreferencedWarning)
      self._dst = geotiff.rasterio.open(
          self._partial, "w", driver="GTiff", height=shape[0], width=shape[1],
          count=shape[2], dtype=scene.dtype, crs=scene.profile.get("crs"),
          transform=scene.profile.get("transform"), nodata=nodata_tag, tiled=True,
          blockxsize=BLOCK, blockysize=BLOCK, BIGTIFF="IF_SAFER")
    names = tuple(scene.band_names) + (None,) * shape[2]
    for band in range(shape[2]):
      self._dst.set_band_description(
          band + 1, f"fused {names[band]}" if names[band] else f"fused band {band + 1}")

  def to_sensor(self, unit: np.ndarray) -> np.ndarray:
    """[0, 1] float to the MS dtype: scaled, and rounded + clipped for integers."""
    values = unit * self.scene.max_value
    dtype = np.dtype(self.scene.dtype)
    if dtype.kind in "iu":
      info = np.iinfo(dtype)
      return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)

  def write(self, row: int, unit_rows: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Rows from `row` on; pixels not `valid` become the nodata value."""
    values = self.to_sensor(unit_rows)
    if valid is not None and self.scene.output_nodata is not None:
      values = nodata.mark(values, valid, self.scene.output_nodata)
    if self._dst is None:
      self._memmap[row:row + len(values)] = values
      return
    window = Window(0, row, values.shape[1], values.shape[0])
    self._dst.write(np.moveaxis(values, -1, 0), window=window)

  def close(self, keep: bool = True):
    """Finishes the file; `keep=False` (a failed run) removes what was written."""
    if self._dst is None:
      self._memmap.flush()
      del self._memmap
      return
    self._dst.close()
    try:
      if keep:
        geotiff.copy_as_cog(self._partial, self.path, self.compress, BLOCK)
    finally:
      os.remove(self._partial)


class FusedImage:
  """A written fused scene, read back by windows (for its metrics)."""

  def __init__(self, path: str):
    if geotiff.rasterio is None:
      with checks.readable(path, "TIFF"):
        self._array, self._src = np.atleast_3d(tifffile.memmap(path, mode="r")), None
      self.height, self.width = self._array.shape[:2]
    else:
      self._src = _open(path)
      self.height, self.width = self._src.height, self._src.width
    self.path = path

  def _window(self, row, col, rows, cols):
    if self._src is None:
      return (self._array[row:row + rows, col:col + cols],)
    with checks.readable(self.path, "GeoTIFF"):
      data = self._src.read(window=Window(col, row, cols, rows))
    return (np.moveaxis(data, 0, -1),)

  def read(self, row, col, rows, cols) -> np.ndarray:
    """Stored values of a window, 0 where it leaves the image."""
    return _padded(self._window, row, col, rows, cols, self.height, self.width)[0]

  def close(self):
    if self._src is not None:
      self._src.close()
