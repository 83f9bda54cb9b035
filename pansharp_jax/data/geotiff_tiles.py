"""Training tiles made from a user's full-resolution GeoTIFF scenes.

`GeoTiffWaldSource` reads ROOT/MS/<scene>.tif + ROOT/PAN/<scene>.tif pairs
(`scene.read_pair`: the common area), degrades each scene once by Wald's
protocol (the original MS becomes GT), then cuts it into non-overlapping tiles
of `tile_size` GT pixels. Degrading the whole scene (rather than each tile)
keeps tile borders free of filter padding artefacts. Per scene the last tenth
of the tile rows (at least one row) is held out, so held-out tiles never share
pixels with training tiles; of the held-out tiles (row by row) the first half
is the val split and the rest the test split, so the images that pick `best/`
are not the ones it is tested on.
"""

import numpy as np

from pansharp_jax.data import checks, geotiff, scene as scene_lib, wald
from pansharp_jax.errors import DataError, require


def _split_tiles(rows: int, cols: int, split: str) -> list[tuple[int, int]]:
  """The (row, col) tiles of a rows x cols scene that belong to `split`.

  The last tenth of the rows (at least one) is held out; val takes the first
  half of its tiles, test the rest. An empty list: the scene is too small.
  """
  held_rows = max(1, rows // 10) if rows >= 2 else 0
  tiles = [(r, c) for r in range(rows) for c in range(cols)]
  train, held = tiles[:(rows - held_rows) * cols], tiles[(rows - held_rows) * cols:]
  if len(held) < 2:
    return []
  return {"train": train, "val": held[:len(held) // 2], "test": held[len(held) // 2:]}[split]


class GeoTiffWaldSource:
  """Reduced-resolution training tiles made from full-resolution GeoTIFF scenes.

  All scenes are read and degraded when the source is built and kept in memory
  as float32 ({gt, lms} at MS size, ms at MS/ratio, pan at MS size).
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
    self._scenes, self._tiles = [], []
    dtype = None
    for stem in stems:
      ms_path, pan_path = files["MS"][stem], files["PAN"][stem]
      pair = scene_lib.read_pair(ms_path, pan_path, ratio)
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
      tiles = _split_tiles(rows, cols, split)
      require(bool(tiles), ms_path,
              f"MS of {pair.ms.shape[0]}x{pair.ms.shape[1]} px makes {rows}x{cols} tiles of "
              f"{tile_size} px, too few for train, val and test tiles (2x2 tiles suffice)")
      height, width = rows * tile_size, cols * tile_size
      gt = checks.to_unit(pair.ms[:height, :width], self.max_value, ms_path)
      pan = checks.to_unit(pair.pan[:ratio * height, :ratio * width],
                           self.max_value, pan_path)
      scene = wald.wald_degrade(gt, pan, sensor, ratio)
      self._scenes.append({"gt": gt, "ms": scene["ms"], "pan": scene["pan"],
                           "lms": np.clip(scene["lms"], 0.0, 1.0)})
      self._tiles += [(len(self._scenes) - 1, r, c) for r, c in tiles]

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
