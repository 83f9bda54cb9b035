"""Whole-scene prediction: tiled inference with overlap blending, GeoTIFF in/out.

  python main.py --config CONFIG --workdir RUN --mode=predict \
      --ms ms.tif --pan pan.tif --out fused.tif

Memory stays bounded whatever the scene size:
- inputs are read window by window (rasterio), one batch of tiles at a time;
- tiles of `tile` PAN pixels overlap by `overlap` pixels; each tile's output is
  weighted by a separable raised-cosine ramp over the overlap, normalised so
  the weights of all tiles sum to exactly 1 at every pixel;
- only one strip of `tile` rows x scene width is accumulated; rows are written
  to the output GeoTIFF (windowed writes) as soon as no later tile touches them.
The batch shape is fixed (the last batch is padded), so the model compiles once.

`lms` (the MS upsampled to PAN size, as in training) is computed per tile with
interp23tap on an MS window with a halo of `LMS_HALO` MS pixels, read from the
scene where it exists and mirrored beyond the scene border, so every tile sees
exactly the values a whole-scene upsampling (`upsample_ms`) would give.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Callable, Iterator, NamedTuple
import warnings

import numpy as np
import tifffile
import tqdm

from pansharp_jax import quicklook
from pansharp_jax.data import checks, geotiff, wald
from pansharp_jax.data.errors import DataError, require

try:
  from rasterio.windows import Window
except ImportError:  # The `[geo]` extra is optional.
  Window = None

# MS pixels read around each tile for interp23tap: its two dyadic 23-tap
# steps reach 5.5 + 2.75 MS pixels; the rest keeps the wrap-around of the
# filter away from the tile.
LMS_HALO = 12
# Longest side of the quicklook overview, in pixels.
QUICKLOOK_SIDE = 1024
# GDAL block cache during prediction, in MB.
GDAL_CACHE_MB = 64


@dataclasses.dataclass(frozen=True)
class TileOptions:
  """Tiling of a scene, in PAN pixels."""
  tile: int = 256      # tile side; a multiple of 4 x ratio (the model's /4 scales on the MS)
  overlap: int = 64    # blended band between neighbouring tiles; a multiple of ratio
  batch: int = 4       # tiles per model call (fixed, so it compiles once)

  def validate(self, ratio: int) -> None:
    unit = 4 * ratio
    if self.tile <= 0 or self.tile % unit:
      raise DataError(f"predict tile size: {self.tile} is not a positive "
                      f"multiple of 4 x ratio = {unit}")
    if self.overlap < 0 or self.overlap % ratio or self.overlap >= self.tile:
      raise DataError(f"predict overlap: {self.overlap} must be a multiple of "
                      f"ratio {ratio} in [0, tile size {self.tile})")
    if self.batch <= 0:
      raise DataError(f"predict batch: {self.batch} must be positive")


def options_from_config(config, tile=0, overlap=-1, batch=0) -> TileOptions:
  """TileOptions from flags, else `config.predict`, else the training crop
  size with a quarter-tile overlap."""
  section = config.predict
  ratio = int(config.data.ratio)
  tile = int(tile or section.tile_size or config.data.image_size)
  if overlap < 0:
    overlap = int(section.overlap)
  if overlap < 0:
    overlap = tile // 4 // ratio * ratio
  batch = int(batch or section.batch_size or config.eval_batch_size)
  options = TileOptions(tile, overlap, batch)
  options.validate(ratio)
  return options


# ---- tile grid and blending weights ----

def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
  """Tile origins along one axis: stride tile - overlap, the last one moved
  back to end at the border (no padding unless the scene is smaller)."""
  if size <= tile:
    return [0]
  starts = list(range(0, size - tile, tile - overlap))
  return starts + [size - tile]


def _ramp(overlap: int) -> np.ndarray:
  """Raised cosine: ramp(k) + ramp(overlap - 1 - k) == 1."""
  k = np.arange(overlap) + 0.5
  return np.sin(np.pi * k / (2 * overlap)) ** 2


def axis_weights(size: int, tile: int, overlap: int) -> list[np.ndarray]:
  """Per tile along one axis, its blending weights (length min(tile, size)),
  normalised so that the tiles' weights sum to 1 at every position.

  Each tile ramps up over `overlap` pixels on sides shared with a neighbour
  (scene borders keep weight 1). The last tile can overlap its neighbour by
  more than `overlap`; the normalisation keeps that seam exact too.
  """
  starts = tile_starts(size, tile, overlap)
  length = min(tile, size)
  raw = []
  for i, _ in enumerate(starts):
    w = np.ones(length)
    if overlap and i > 0:
      w[:overlap] = _ramp(overlap)
    if overlap and i < len(starts) - 1:
      w[length - overlap:] *= _ramp(overlap)[::-1]
    raw.append(w)
  total = np.zeros(size)
  for s, w in zip(starts, raw):
    total[s:s + length] += w
  return [w / total[s:s + length] for s, w in zip(starts, raw)]


# ---- scenes: lazy windows of an MS + PAN pair ----

def upsample_ms(ms: np.ndarray, ratio: int, halo: int = LMS_HALO) -> np.ndarray:
  """lms of a whole (h, w, C) MS in [0, 1]: interp23tap after mirroring `halo`
  pixels on every side (cropped again), clipped to [0, 1], float32. Tiles get
  the same values (`Scene.tile_inputs`)."""
  ms = np.pad(ms, ((halo, halo), (halo, halo), (0, 0)), mode="symmetric")
  return _interp_crop(ms, ratio, halo, ms.shape[0] - 2 * halo, ms.shape[1] - 2 * halo)


def _interp_crop(ms_halo, ratio, halo, rows, cols):
  """interp23tap of an MS window with a halo, cropped to the inner window."""
  up = wald.interp23tap(ms_halo, ratio)[ratio * halo:ratio * (halo + rows),
                                       ratio * halo:ratio * (halo + cols)]
  return np.clip(up, 0.0, 1.0).astype(np.float32)


class Scene:
  """An MS + PAN pair read by windows; values in [0, 1], float32.

  Coordinates are PAN pixels of the pair's common area (MS pixels for
  `read_ms`). Subclasses implement `_ms` and `_pan` for in-bounds windows.
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

  def _ms(self, row, col, rows, cols) -> np.ndarray:
    raise NotImplementedError

  def _pan(self, row, col, rows, cols) -> np.ndarray:
    raise NotImplementedError

  def read_ms(self, row, col, rows, cols) -> np.ndarray:
    """MS window in MS pixels, mirrored where it leaves the scene."""
    h, w = self.height // self.ratio, self.width // self.ratio
    r0, r1 = max(row, 0), min(row + rows, h)
    c0, c1 = max(col, 0), min(col + cols, w)
    ms = checks.to_unit(self._ms(r0, c0, r1 - r0, c1 - c0), self.max_value,
                        self.ms_where)
    pad = ((r0 - row, row + rows - r1), (c0 - col, col + cols - c1), (0, 0))
    return np.pad(ms, pad, mode="symmetric") if np.any(pad) else ms

  def read_pan(self, row, col, rows, cols) -> np.ndarray:
    """PAN window (in-bounds origin), mirrored past the bottom/right border."""
    r1, c1 = min(row + rows, self.height), min(col + cols, self.width)
    pan = checks.to_unit(self._pan(row, col, r1 - row, c1 - col),
                         self.max_value, self.pan_where)
    pad = ((0, row + rows - r1), (0, col + cols - c1), (0, 0))
    return np.pad(pan, pad, mode="symmetric") if np.any(pad) else pan

  def tile_inputs(self, row: int, col: int, tile: int) -> dict[str, np.ndarray]:
    """{ms, lms, pan} of the tile at PAN (row, col); see the module docstring."""
    r, t, halo = self.ratio, tile // self.ratio, LMS_HALO
    ms_halo = self.read_ms(row // r - halo, col // r - halo, t + 2 * halo,
                           t + 2 * halo)
    lms = _interp_crop(ms_halo, r, halo, t, t)
    return {"ms": ms_halo[halo:halo + t, halo:halo + t], "lms": lms,
            "pan": self.read_pan(row, col, tile, tile)}

  def close(self) -> None:
    pass


class ArrayScene(Scene):
  """A scene held in memory: (h, w, C) MS and (ratio*h, ratio*w, 1) PAN in
  sensor units (tests and small scenes)."""

  def __init__(self, ms, pan, ratio, max_value, profile=None):
    checks.require_pan_size(ms.shape[:2], pan.shape[:2], ratio, "scene")
    self._ms_array, self._pan_array = ms, pan
    self.ratio, self.max_value = ratio, float(max_value)
    self.height, self.width = pan.shape[:2]
    self.num_bands, self.dtype = ms.shape[-1], ms.dtype
    self.profile = profile or {"crs": None, "transform": None}

  def _ms(self, row, col, rows, cols):
    return self._ms_array[row:row + rows, col:col + cols]

  def _pan(self, row, col, rows, cols):
    return self._pan_array[row:row + rows, col:col + cols]


class GeoTiffScene(Scene):
  """An MS + PAN GeoTIFF pair read lazily by windows through rasterio, cropped
  to the common area like `geotiff.read_pair`. Without rasterio both files
  are read whole (no georeference to compare, so sizes must match exactly)."""

  def __init__(self, ms_path, pan_path, ratio, max_value):
    self.ms_where, self.pan_where, self.ratio = ms_path, pan_path, ratio
    if geotiff.rasterio is None:
      pair = geotiff.read_pair(ms_path, pan_path, ratio)
      self._inner = ArrayScene(pair.ms, pair.pan, ratio, 1.0, pair.profile)
      ms_hw, pan_bands = pair.ms.shape[:2], 1
      ms_offset = pan_offset = (0, 0)
      self.num_bands, self.dtype = pair.ms.shape[-1], pair.ms.dtype
      self.profile = pair.profile
    else:
      self._inner = None
      self._ms_src = self._open(ms_path)
      self._pan_src = self._open(pan_path)
      ms_tf, pan_tf = self._ms_src.transform, self._pan_src.transform
      georef = [not (s.crs is None and s.transform.is_identity)
                for s in (self._ms_src, self._pan_src)]
      where = f"{ms_path}, {pan_path}"
      require(georef[0] == georef[1], where, "only one of the pair is georeferenced")
      ms_shape = (self._ms_src.height, self._ms_src.width)
      pan_shape = (self._pan_src.height, self._pan_src.width)
      if georef[0]:
        require(self._ms_src.crs == self._pan_src.crs, where,
                f"different CRS ({self._ms_src.crs} vs {self._pan_src.crs})")
        (r0, c0, rows, cols), pan_offset = geotiff._overlap_window(  # pylint: disable=protected-access
            ms_shape, ms_tf, pan_shape, pan_tf, ratio, where)
        ms_offset, ms_hw = (r0, c0), (rows, cols)
        transform = geotiff.Affine(
            pan_tf.a, 0.0, pan_tf.c + pan_offset[1] * pan_tf.a,
            0.0, pan_tf.e, pan_tf.f + pan_offset[0] * pan_tf.e)
        self.profile = {"crs": self._pan_src.crs, "transform": transform}
      else:
        checks.require_pan_size(ms_shape, pan_shape, ratio, where)
        ms_offset = pan_offset = (0, 0)
        ms_hw = ms_shape
        self.profile = {"crs": None, "transform": None}
      self.num_bands, self.dtype = self._ms_src.count, np.dtype(self._ms_src.dtypes[0])
      pan_bands = self._pan_src.count
      require(pan_bands in (1, 3), pan_path, f"PAN has {pan_bands} bands, expected 1")
      checks.require_same_dtype(self._pan_src.dtypes[0], self.dtype, pan_path)
    self._ms_offset, self._pan_offset = ms_offset, pan_offset
    self.height, self.width = ratio * ms_hw[0], ratio * ms_hw[1]
    self.max_value = checks.max_value_for(self.dtype, max_value)
    if self._inner is not None:
      self._inner.max_value = self.max_value

  @staticmethod
  def _open(path):
    with checks.readable(path, "GeoTIFF"), warnings.catch_warnings():
      warnings.simplefilter("ignore", geotiff.NotGeoreferencedWarning)
      return geotiff.rasterio.open(path)

  def _read(self, src, path, offset, row, col, rows, cols):
    window = Window(col + offset[1], row + offset[0], cols, rows)
    with checks.readable(path, "GeoTIFF"):
      return np.moveaxis(src.read(window=window), 0, -1)

  def _ms(self, row, col, rows, cols):
    if self._inner is not None:
      return self._inner._ms(row, col, rows, cols)  # pylint: disable=protected-access
    return self._read(self._ms_src, self.ms_where, self._ms_offset, row, col, rows, cols)

  def _pan(self, row, col, rows, cols):
    if self._inner is not None:
      return self._inner._pan(row, col, rows, cols)  # pylint: disable=protected-access
    pan = self._read(self._pan_src, self.pan_where, self._pan_offset, row, col, rows, cols)
    return checks.single_band_pan(pan, self.pan_where)

  def close(self):
    if self._inner is None:
      self._ms_src.close()
      self._pan_src.close()


# ---- output ----

class _Writer:
  """Writes rows of the fused scene in sensor units and the MS dtype."""

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


class _Overview:
  """Every `step`-th pixel of ms_up, pan and fused, for the quicklook."""

  def __init__(self, scene: Scene, side: int = QUICKLOOK_SIDE):
    self.step = max(1, -(-max(scene.height, scene.width) // side))
    h, w = -(-scene.height // self.step), -(-scene.width // self.step)
    self.images = {"lms": np.zeros((h, w, scene.num_bands), np.float32),
                   "pan": np.zeros((h, w, 1), np.float32),
                   "fused": np.zeros((h, w, scene.num_bands), np.float32)}
    self.height, self.width = scene.height, scene.width

  def _sample(self, start, length, limit):
    """Overview indices and offsets inside [start, start + length)."""
    first = -(-start // self.step) * self.step
    pos = np.arange(first, min(start + length, limit), self.step)
    return pos // self.step, pos - start

  def add(self, key, row, col, image):
    oy, iy = self._sample(row, image.shape[0], self.height)
    ox, ix = self._sample(col, image.shape[1], self.width)
    self.images[key][np.ix_(oy, ox)] = image[np.ix_(iy, ix)]


# ---- tiled inference ----

BatchFn = Callable[[dict[str, np.ndarray]], np.ndarray]


class _Tile(NamedTuple):
  i: int
  j: int
  row: int
  col: int


def _batches(tiles, size) -> Iterator[list[_Tile]]:
  for k in range(0, len(tiles), size):
    yield tiles[k:k + size]


def _stack(inputs: list[dict], size: int) -> dict[str, np.ndarray]:
  """The batch, padded to `size` tiles by repeating the last (fixed shape)."""
  inputs = inputs + [inputs[-1]] * (size - len(inputs))
  return {k: np.stack([x[k] for x in inputs]) for k in inputs[0]}


def tiled_predict(scene: Scene, predict_batch: BatchFn, options: TileOptions,
                  write_rows: Callable[[int, np.ndarray], None],
                  overview: _Overview | None = None, progress: bool = True) -> None:
  """Runs `predict_batch` over the scene's tiles and writes blended rows.

  Args:
    scene: the input pair.
    predict_batch: {ms, lms, pan} of `options.batch` tiles -> (batch, tile,
      tile, C) outputs in [0, 1]; may return a not-yet-ready jax array (the
      next batch is read while it computes).
    options: tiling.
    write_rows: called with (first row, rows x width x C float32 in [0, 1])
      top to bottom, each row exactly once.
    overview: collects the quicklook samples when given.
    progress: show a tqdm bar.
  """
  t, o = options.tile, options.overlap
  height, width = scene.height, scene.width
  rows, cols = tile_starts(height, t, o), tile_starts(width, t, o)
  wy, wx = axis_weights(height, t, o), axis_weights(width, t, o)
  th, tw = min(t, height), min(t, width)
  tiles = [_Tile(i, j, r, c) for i, r in enumerate(rows) for j, c in enumerate(cols)]
  # Rows [strip_row, strip_row + th) of the scene, still accumulating.
  strip = np.zeros((th, width, scene.num_bands), np.float32)
  state = {"strip_row": 0}

  def flush(upto: int):
    """Writes the finished rows [strip_row, upto), slides the strip to `upto`."""
    start = state["strip_row"]
    shift = upto - start
    done = strip[:shift].copy()
    if len(done):
      write_rows(start, done)
      if overview is not None:
        overview.add("fused", start, 0, done)
    if 0 < shift < th:
      strip[:th - shift] = strip[shift:].copy()
    strip[max(th - shift, 0):] = 0
    state["strip_row"] = upto

  def accumulate(tile: _Tile, output: np.ndarray):
    if tile.row != state["strip_row"]:
      flush(tile.row)
    weight = wy[tile.i][:, None, None] * wx[tile.j][None, :, None]
    strip[:, tile.col:tile.col + tw] += weight * output[:th, :tw]

  def read(batch):
    inputs = [scene.tile_inputs(tile.row, tile.col, t) for tile in batch]
    if overview is not None:
      for tile, x in zip(batch, inputs):
        overview.add("lms", tile.row, tile.col, x["lms"][:th, :tw])
        overview.add("pan", tile.row, tile.col, x["pan"][:th, :tw])
    return _stack(inputs, options.batch)

  bar = tqdm.tqdm(total=len(tiles), desc="predict", unit="tile",
                  disable=not progress, leave=False)
  batches = list(_batches(tiles, options.batch))
  pending = None  # (tiles, output) of the batch in flight
  next_inputs = read(batches[0])
  for k, batch in enumerate(batches):
    output = predict_batch(next_inputs)          # dispatched asynchronously
    if pending is not None:
      for tile, out in zip(pending[0], np.asarray(pending[1])):
        accumulate(tile, out)
      bar.update(len(pending[0]))
    pending = (batch, output)
    if k + 1 < len(batches):
      next_inputs = read(batches[k + 1])         # overlaps the model call
  for tile, out in zip(pending[0], np.asarray(pending[1])):
    accumulate(tile, out)
  bar.update(len(pending[0]))
  bar.close()
  flush(height)


# ---- model ----

def require_weights(workdir: str, weights: str = "latest") -> None:
  """Fails early (before any compile) when `workdir` has nothing to load."""
  folder = os.path.join(workdir, "checkpoints" if weights == "latest" else "best")
  steps = [d for d in os.listdir(folder) if d.isdigit()] if os.path.isdir(folder) else []
  if not steps:
    hint = "train first" if weights == "latest" else (
        "train with validation first, or use --weights=latest")
    raise FileNotFoundError(f"{folder}: no checkpoint to predict with ({hint})")


def load_variables(config, workdir: str, weights: str = "latest"):
  """(model, flax variables with the EMA params) restored from `workdir`.

  weights: 'latest' (the newest checkpoint in WORKDIR/checkpoints, as
  --mode=evaluate) or 'best' (the export in WORKDIR/best).
  """
  from pansharp_jax.train import builder, checkpoint, parallel  # pylint: disable=import-outside-toplevel

  if weights not in ("latest", "best"):
    raise DataError(f"--weights: {weights!r} is not 'latest' or 'best'")
  require_weights(workdir, weights)
  mesh = parallel.make_mesh()
  model, _, _, state = builder.build(config, mesh)
  if weights == "best":
    like = {"params": state.ema_params, **state.model_state}
    restored = checkpoint.restore_best(workdir, checkpoint.abstract_like(like))
    if restored is None:
      raise FileNotFoundError(f"{workdir}/best: no exported best model to predict "
                              "with (train with validation first, or use --weights=latest)")
    return model, restored[0]
  manager = checkpoint.make_manager(workdir, config)
  try:
    state = checkpoint.restore_latest(manager, checkpoint.abstract_like(state), None)
  finally:
    manager.close()
  if state is None:
    raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint to predict with "
                            "(train first)")
  return model, {"params": state.ema_params, **state.model_state}


def make_batch_fn(model, variables) -> BatchFn:
  """Jitted eval-mode forward on one batch of tiles, outputs in [0, 1]."""
  import jax  # pylint: disable=import-outside-toplevel
  from pansharp_jax.train import step as step_lib  # pylint: disable=import-outside-toplevel

  params = variables["params"]
  model_state = {k: v for k, v in variables.items() if k != "params"}
  fn = jax.jit(lambda p, s, b: step_lib.predict_fn(p, s, b, model=model))
  return lambda batch: fn(params, model_state, batch)


def open_scene(config, ms_path: str, pan_path: str) -> Scene:
  """The pair, with its band count checked against the config (no pixels read)."""
  ratio = int(config.data.ratio)
  scene = GeoTiffScene(ms_path, pan_path, ratio, float(config.data.max_value))
  checks.require_bands(scene.num_bands, int(config.data.num_bands), ms_path)
  return scene


def predict_scene(scene: Scene, predict_batch: BatchFn, options: TileOptions,
                  out_path: str, progress: bool = True) -> str:
  """Writes the fused scene to `out_path` and its quicklook beside it; returns
  the quicklook path."""
  overview = _Overview(scene)
  # GDAL's block cache defaults to 5% of the RAM and would keep every output
  # block written; a small cache keeps memory flat in the scene size.
  env = (geotiff.rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
         if geotiff.rasterio is not None else contextlib.nullcontext())
  with env:
    writer = _Writer(out_path, scene)
    try:
      tiled_predict(scene, predict_batch, options, writer.write, overview, progress)
    finally:
      writer.close()
  look = os.path.splitext(out_path)[0] + "_quicklook.png"
  quicklook.write_quicklook(look, overview.images["lms"], overview.images["pan"],
                            overview.images["fused"])
  return look


def predict_files(config, workdir: str, ms_path: str, pan_path: str, out_path: str,
                  *, tile: int = 0, overlap: int = -1, batch: int = 0,
                  weights: str = "latest", progress: bool = True) -> str:
  """The `--mode=predict` command; inputs are checked before the model is built."""
  options = options_from_config(config, tile, overlap, batch)
  scene = open_scene(config, ms_path, pan_path)
  try:
    model, variables = load_variables(config, workdir, weights)
    look = predict_scene(scene, make_batch_fn(model, variables), options,
                         out_path, progress)
  finally:
    scene.close()
  print(f"wrote {out_path} ({scene.height}x{scene.width}, {scene.num_bands} bands, "
        f"{np.dtype(scene.dtype).name}) and {look}")
  return out_path
