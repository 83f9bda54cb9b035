"""Whole-scene prediction: tiled inference with overlap blending.

  python main.py --config CONFIG --workdir RUN --mode=predict \
      --ms ms.tif --pan pan.tif --out fused.tif

Scenes are read and written by `data/scene.py`; this module tiles them.
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
exactly the values a whole-scene upsampling (mirrored by the same halo)
would give.
"""

import contextlib
import dataclasses
import os
from typing import Callable, Iterator, NamedTuple

import numpy as np
import tqdm

from pansharp_jax import quicklook
from pansharp_jax.data import checks, geotiff, wald
from pansharp_jax.data.scene import GeoTiffScene, Scene, SceneWriter
from pansharp_jax.errors import DataError

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


def options_from_config(config) -> TileOptions:
  """TileOptions from `config.predict`, its zero / -1 fields filled from the
  training crop size (a quarter-tile overlap) and eval_batch_size."""
  section = config.predict
  ratio = int(config.data.ratio)
  tile = int(section.tile_size or config.data.image_size)
  overlap = int(section.overlap)
  if overlap < 0:
    overlap = tile // 4 // ratio * ratio
  batch = int(section.batch_size or config.eval_batch_size)
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


# ---- tile inputs ----

def tile_inputs(scene: Scene, row: int, col: int, tile: int) -> dict[str, np.ndarray]:
  """{ms, lms, pan} of the tile at PAN (row, col); see the module docstring."""
  r, t, halo = scene.ratio, tile // scene.ratio, LMS_HALO
  ms_halo = scene.read_ms(row // r - halo, col // r - halo, t + 2 * halo,
                          t + 2 * halo)
  up = wald.interp23tap(ms_halo, r)[r * halo:r * (halo + t), r * halo:r * (halo + t)]
  return {"ms": ms_halo[halo:halo + t, halo:halo + t],
          "lms": np.clip(up, 0.0, 1.0).astype(np.float32),
          "pan": scene.read_pan(row, col, tile, tile)}


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
    inputs = [tile_inputs(scene, tile.row, tile.col, t) for tile in batch]
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


# ---- the scene loop ----

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
    writer = SceneWriter(out_path, scene)
    try:
      tiled_predict(scene, predict_batch, options, writer.write, overview, progress)
    finally:
      writer.close()
  look = os.path.splitext(out_path)[0] + "_quicklook.png"
  quicklook.write_quicklook(look, overview.images["lms"], overview.images["pan"],
                            overview.images["fused"])
  return look
