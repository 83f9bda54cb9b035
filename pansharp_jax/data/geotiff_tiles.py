"""Training tiles made from a user's full-resolution GeoTIFF scenes.

`GeoTiffWaldSource` reads ROOT/MS/<scene>.tif + ROOT/PAN/<scene>.tif pairs
(`scene.open_scene`: the common area, nodata filled and masked as predict and
adapt read it: the nodata tag, an internal mask or an alpha band) and cuts
each scene into non-overlapping tiles of `tile_size` GT (= MS) pixels. Only
tiles wholly in valid data are used, so every loss and metric is computed on
valid pixels alone.

Layout per scene (rows of tiles, top to bottom): the held-out rows are the
last tenth (at least one) of the rows that have a valid tile, taken upwards
until they hold at least two valid tiles; of their valid tiles (row by row)
the first half is the val split and the rest the test split, so the images
that pick `best/` are not the ones it is tested on. The training tiles are
the valid tiles above the held-out rows.

Each split is degraded by Wald's protocol on its own pixels only: the
training region (every row above the held-out rows) as one image, which keeps
its tile borders free of filter padding, and each held-out tile by itself. So
no filter carries a held-out pixel into a training input, nor a val pixel
into a test input: the splits are independent, whatever the filters' support.
"""

import numpy as np

from pansharp_jax.data import checks, geotiff, nodata, scene as scene_lib, wald
from pansharp_jax.errors import DataError, require

SPLITS = ("train", "val", "test")


def split_layout(valid: np.ndarray) -> tuple[int, dict[str, list[tuple[int, int]]]]:
  """Where each split lies in a scene whose (rows, cols) tiles are `valid`
  (wholly valid data): (first held-out row, {split: [(row, col), ...]});
  a split is empty when the scene has too few valid tiles."""
  rows = np.flatnonzero(valid.any(1))
  if len(rows) == 0:
    return valid.shape[0], {split: [] for split in SPLITS}
  first = len(rows) - max(1, len(rows) // 10)
  while first > 0 and valid[rows[first]:].sum() < 2:
    first -= 1
  start = int(rows[first])
  held = [(int(r), int(c)) for r, c in np.argwhere(valid[start:])]
  held = [(r + start, c) for r, c in held]
  train = [(int(r), int(c)) for r, c in np.argwhere(valid[:start])]
  return start, {"train": train, "val": held[:len(held) // 2], "test": held[len(held) // 2:]}


def _read(scene, height, width):
  """{gt, pan} of the scene's top-left height x width MS pixels in [0, 1],
  each as (values, valid mask)."""
  ratio = scene.ratio
  return {"gt": scene.read_ms(0, 0, height, width),
          "pan": scene.read_pan(0, 0, ratio * height, ratio * width)}


def _degrade(images, rows, cols, sensor, ratio):
  """The Wald triple of one region (MS-pixel slices) of `_read`'s images.
  Nodata is filled again from the region's own pixels only (the scene-wide
  fill may have mirrored other regions' pixels into it)."""
  pan_rows, pan_cols = (slice(s.start * ratio, s.stop * ratio) for s in (rows, cols))
  gt, pan = (nodata.fill(values[r, c], valid[r, c]) for (values, valid), r, c in (
      (images["gt"], rows, cols), (images["pan"], pan_rows, pan_cols)))
  out = wald.wald_degrade(gt, pan, sensor, ratio)
  return {"gt": gt, "ms": out["ms"], "pan": out["pan"], "lms": np.clip(out["lms"], 0.0, 1.0)}


class GeoTiffWaldSource:
  """Reduced-resolution tiles of one split, made from full-resolution
  GeoTIFF scenes (module docstring).

  The split's regions are read and degraded when the source is built and
  kept in memory as float32 ({gt, lms} at MS size, ms at MS/ratio, pan at MS
  size). `coverage` says, per split, how many tiles it has over all scenes
  and what fraction of the scenes' MS pixels they cover.
  """

  name = "geotiff"

  def __init__(self, root: str, split: str, *, num_bands: int, ratio: int,
               max_value: float, sensor: str, tile_size: int):
    stems, files = checks.match_stems(
        {"MS": f"{root}/MS", "PAN": f"{root}/PAN"}, geotiff.TIFF_EXTENSIONS, where=root)
    require(bool(stems), root, "no GeoTIFF scenes in MS/ and PAN/")
    try:  # an unknown sensor, or one with another band count, fails before any reading
      wald.mtf_kernels(sensor, num_bands, ratio)
    except ValueError as e:
      raise DataError(f"config.data.sensor: {e}") from e
    self.num_bands, self.ratio, self.tile = num_bands, ratio, tile_size
    self._regions, self._tiles = [], []
    counts, scene_pixels, dtype = dict.fromkeys(SPLITS, 0), 0, None
    for stem in stems:
      ms_path, pan_path = files["MS"][stem], files["PAN"][stem]
      with scene_lib.open_scene(ms_path, pan_path, ratio, max_value) as scene:
        checks.require_bands(scene.num_bands, num_bands, ms_path)
        if dtype is None:  # the first scene fixes the bit depth of the dataset
          dtype, self.max_value = scene.dtype, scene.max_value
        checks.require_same_dtype(scene.dtype, dtype, ms_path)
        ms_h, ms_w = scene.height // ratio, scene.width // ratio
        rows, cols = ms_h // tile_size, ms_w // tile_size
        require(rows > 0 and cols > 0, ms_path,
                f"MS of {ms_h}x{ms_w} px is smaller than one data.image_size={tile_size} px tile")
        images = _read(scene, rows * tile_size, cols * tile_size)
      scene_pixels += ms_h * ms_w
      pan_valid = images["pan"][1].reshape(rows * tile_size, ratio, cols * tile_size, ratio)
      valid = images["gt"][1] & pan_valid.all((1, 3))
      tiles_valid = valid.reshape(rows, tile_size, cols, tile_size).all((1, 3))
      start, layout = split_layout(tiles_valid)
      require(bool(layout["train"]) and bool(layout["test"]), ms_path,
              f"MS of {ms_h}x{ms_w} px makes {rows}x{cols} tiles of {tile_size} px, "
              f"{int(tiles_valid.sum())} of them wholly in valid (not nodata) pixels: too "
              "few for train, val and test tiles (a valid tile above a row of two suffices)")
      for name in SPLITS:
        counts[name] += len(layout[name])
      self._add(split, layout[split], start, images, sensor)
    area = tile_size * tile_size
    self.coverage = {name: {"tiles": counts[name],
                            "scene_fraction": round(counts[name] * area / scene_pixels, 4)}
                     for name in SPLITS}

  def _add(self, split, tiles, start, images, sensor):
    """Degrades this split's region(s) of one scene and lists its tiles."""
    size, r = self.tile, self.ratio
    width = images["gt"][0].shape[1]
    if split == "train":
      self._regions.append(_degrade(images, slice(0, start * size), slice(0, width), sensor, r))
      self._tiles += [(len(self._regions) - 1, row, col) for row, col in tiles]
      return
    for row, col in tiles:
      rows, cols = slice(row * size, (row + 1) * size), slice(col * size, (col + 1) * size)
      self._regions.append(_degrade(images, rows, cols, sensor, r))
      self._tiles.append((len(self._regions) - 1, 0, 0))

  def __len__(self) -> int:
    return len(self._tiles)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    region, row, col = self._tiles[index]
    size = self.tile
    out = {}
    for key, array in self._regions[region].items():
      step = size // self.ratio if key == "ms" else size
      out[key] = np.ascontiguousarray(
          array[row * step:(row + 1) * step, col * step:(col + 1) * step], np.float32)
    return out
