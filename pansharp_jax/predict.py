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

`lms` (the MS upsampled to PAN size, as in training) is computed per tile
from an MS window with a halo (`Scene.read_inputs`), so every tile sees
exactly the values of a whole-scene upsampling.

Nodata (`data/nodata.py`): a pixel is valid where the PAN and the upsampled
MS are; the model sees invalid pixels filled by mirroring the valid ones,
tiles without any valid pixel are skipped, and invalid pixels are written as
the output's nodata value.
"""

import dataclasses
import os
from typing import Callable, NamedTuple

import numpy as np
import tqdm

from pansharp_jax import quicklook
from pansharp_jax.data import checks, geotiff
from pansharp_jax.data import scene as scene_lib
from pansharp_jax.data.scene import Scene, SceneWriter
from pansharp_jax.errors import DataError

# Longest side of the quicklook overview, in pixels.
QUICKLOOK_SIDE = 1024


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


# ---- tiled inference ----

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


BatchFn = Callable[[dict[str, np.ndarray]], np.ndarray]


class _Tile(NamedTuple):
  i: int
  j: int
  row: int
  col: int


def model_inputs(scene: Scene, row: int, col: int, tile: int):
  """({ms, lms, pan} in [0, 1] as the model takes them, valid mask) of the
  tile at PAN (row, col)."""
  x = scene.read_inputs(row, col, tile, tile)
  return {"ms": x.ms, "lms": np.clip(x.lms, 0.0, 1.0), "pan": x.pan}, x.valid


def _stack(inputs: list[dict], size: int) -> dict[str, np.ndarray]:
  """The batch, padded to `size` tiles by repeating the last (fixed shape)."""
  inputs = inputs + [inputs[-1]] * (size - len(inputs))
  return {k: np.stack([x[k] for x in inputs]) for k in inputs[0]}


def tiled_predict(scene: Scene, predict_batch: BatchFn, options: TileOptions,
                  write_rows: Callable[[int, np.ndarray, np.ndarray], None],
                  overview: _Overview | None = None, progress: bool = True) -> None:
  """Runs `predict_batch` over the scene's tiles and writes blended rows.

  Args:
    scene: the input pair.
    predict_batch: {ms, lms, pan} of `options.batch` tiles -> (batch, tile,
      tile, C) outputs in [0, 1]; may return a not-yet-ready jax array (the
      next batch is read while it computes).
    options: tiling.
    write_rows: called with (first row, rows x width x C float32 in [0, 1],
      rows x width valid mask) top to bottom, each row exactly once; invalid
      pixels are 0.
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
  strip_valid = np.zeros((th, width), bool)
  state = {"strip_row": 0}
  bar = tqdm.tqdm(total=len(tiles), desc="predict", unit="tile",
                  disable=not progress, leave=False)

  def flush(upto: int):
    """Writes the finished rows [strip_row, upto), slides the strip to `upto`;
    rows that no tile reached (skipped tiles) are written as invalid."""
    start = state["strip_row"]
    while start < upto:
      n = min(upto - start, th)
      done = np.where(strip_valid[:n, :, None], strip[:n], 0.0)
      write_rows(start, done, strip_valid[:n].copy())
      if overview is not None:
        overview.add("fused", start, 0, done)
      for a in (strip, strip_valid):
        a[:th - n] = a[n:].copy()
        a[th - n:] = 0
      start += n
    state["strip_row"] = upto

  def accumulate(tile: _Tile, output: np.ndarray, valid: np.ndarray):
    if tile.row != state["strip_row"]:
      flush(tile.row)
    weight = wy[tile.i][:, None, None] * wx[tile.j][None, :, None]
    strip[:, tile.col:tile.col + tw] += weight * output[:th, :tw]
    strip_valid[:, tile.col:tile.col + tw] |= valid[:th, :tw]

  def batches():
    """Groups of (tile, inputs, valid) for the model; a tile without any valid
    pixel is skipped (every pixel it covers is invalid)."""
    group = []
    for tile in tiles:
      x, valid = model_inputs(scene, tile.row, tile.col, t)
      if overview is not None:
        overview.add("lms", tile.row, tile.col, x["lms"][:th, :tw])
        overview.add("pan", tile.row, tile.col, x["pan"][:th, :tw])
      if not valid.any():
        bar.update(1)
        continue
      group.append((tile, x, valid))
      if len(group) == options.batch:
        yield group
        group = []
    if group:
      yield group

  def finish(group, output):
    for (tile, _, valid), out in zip(group, np.asarray(output)):
      accumulate(tile, out, valid)
    bar.update(len(group))

  source = batches()
  pending = None  # (group, output) of the batch in flight
  group = next(source, None)
  while group is not None:
    output = predict_batch(_stack([x for _, x, _ in group], options.batch))  # async
    if pending is not None:
      finish(*pending)
    pending = (group, output)
    group = next(source, None)                   # read while the model computes
  if pending is not None:
    finish(*pending)
  bar.close()
  flush(height)


# ---- the scene loop ----

def open_scene(config, ms_path: str, pan_path: str) -> Scene:
  """The pair, with its band count checked against the config (no pixels
  read) and the nodata rules of `config.predict`."""
  scene = scene_lib.open_scene(ms_path, pan_path, int(config.data.ratio),
                               float(config.data.max_value),
                               nodata_value=config.predict.nodata,
                               zero_is_nodata=bool(config.predict.zero_is_nodata))
  try:
    checks.require_bands(scene.num_bands, int(config.data.num_bands), ms_path)
  except DataError:
    scene.close()
    raise
  return scene


def predict_scene(scene: Scene, predict_batch: BatchFn, options: TileOptions,
                  out_path: str, compress: str = "deflate", progress: bool = True) -> str:
  """Writes the fused scene to `out_path` (`compress`: deflate | lzw | none)
  and its quicklook beside it; returns the quicklook path."""
  overview = _Overview(scene)
  with geotiff.small_cache():
    writer = SceneWriter(out_path, scene, compress)
    try:
      tiled_predict(scene, predict_batch, options, writer.write, overview, progress)
    except BaseException:
      writer.close(keep=False)
      raise
    writer.close()
  look = os.path.splitext(out_path)[0] + "_quicklook.png"
  quicklook.write_quicklook(look, overview.images["lms"], overview.images["pan"],
                            overview.images["fused"])
  return look
