"""Full-resolution quality of a fused scene, tile by tile: `<out>_metrics.json`.

The indices of `metrics.evaluate_full` (D_lambda, D_s, QNR of toolbox 1.0;
Khan's D_lambda and HQNR, sensor MTF from `config.data.sensor`) for a scene
too large to hold in memory. Each of them is a function of means over the
distinct 32 x 32 blocks of the image (UIQI of band pairs, of bands against
the PAN, Q2n) taken before any absolute difference; so the scene is cut into
tiles of whole blocks (512 x 512 PAN pixels), each tile adds its blocks'
values to running sums, and the indices come from the sums at the end. That
is the whole-scene value of the toolbox's definition, not a mean of per-tile
scores, with memory of one tile whatever the scene size:
- what needs context (the MS upsampled by interp23tap, the PAN's low-pass,
  the MTF filter of Khan's index) is computed on a window with a halo, so it
  equals the whole-image filter, except at the scene's edges: they are
  mirrored, as nodata borders are, where the toolbox wraps (interp23tap) or
  replicates (MTF) them. Blocks within `edge_reach` of an edge can differ
  from the toolbox's, the others do not; the report counts them
  (`blocks_near_edge`), docs/predict.md gives the size of the difference;
- blocks with any invalid (nodata) pixel are left out, as are the rows and
  columns past the last whole block (the toolbox needs whole blocks too),
  and blocks where any method's index is not finite: every method is scored
  on the same blocks (`blocks_scored_by_method` counts them per method);
- the fused scene is read back from the written file, in sensor units as
  stored; its invalid pixels are filled as the model's inputs are
  (`data/nodata.py`) before the MTF filter reaches them.
With `baselines`, every method of `baselines.BASELINES` fuses each tile's
window and is scored on the same blocks: tile-local versions of methods that
fit global statistics (means, regressions) over the image.
"""

import json
import os

import numpy as np
import tqdm

from pansharp_jax import baselines as baselines_lib
from pansharp_jax import metrics
from pansharp_jax.data import geotiff, nodata, wald
from pansharp_jax.data.scene import LMS_HALO, FusedImage, Scene

BLOCK = 32
TILE = 512          # PAN pixels, a multiple of BLOCK
_MTF_REACH = 20     # radius of the 41-tap MTF filters
PROTOCOL = ("full resolution: D_lambda, D_s, QNR (toolbox 1.0), Khan's D_lambda and "
            f"HQNR over the scene's distinct {BLOCK}x{BLOCK} blocks; blocks with "
            "nodata left out; scene edges mirrored (the toolbox wraps or replicates "
            "them: blocks_near_edge can differ)")


def edge_reach(ratio: int) -> int:
  """PAN px from a scene edge within which a block's indices depend on how
  the edge is extended: interp23tap's dyadic steps reach 11 px of each grid
  (11 (ratio - 1) PAN px), after D_s's bicubic decimation (2 ratio); the MTF
  filter's 20 px reach less."""
  return 11 * (ratio - 1) + 2 * ratio


def _whole(pixels: int, ratio: int) -> int:
  """`pixels` rounded up to whole MS pixels (windows stay on the MS grid)."""
  return -(-pixels // ratio) * ratio


def block_terms(x, x_lp, ms_up, pan, pan_lp) -> dict[str, np.ndarray]:
  """Per-block indices, (..., rows / BLOCK, cols / BLOCK), of fused `x` and its
  MTF-filtered `x_lp` (rows, cols, C) against `ms_up` (same shape), `pan` and
  `pan_lp` (rows, cols), all in sensor units."""
  fused, ms = (np.ascontiguousarray(np.moveaxis(a, -1, 0)) for a in (x, ms_up))
  i, j = np.triu_indices(fused.shape[0], 1)
  grid = (x.shape[0] // BLOCK, x.shape[1] // BLOCK)
  return {"q_fused": metrics.block_uiqi(fused[i], fused[j], BLOCK),
          "q_ms": metrics.block_uiqi(ms[i], ms[j], BLOCK),
          "q_high": metrics.block_uiqi(fused, np.broadcast_to(pan, fused.shape), BLOCK),
          "q_low": metrics.block_uiqi(ms, np.broadcast_to(pan_lp, ms.shape), BLOCK),
          "q2n": metrics.q2n_blocks(ms_up, x_lp, BLOCK, BLOCK).reshape(grid)}


def finite(terms: dict[str, np.ndarray]) -> np.ndarray:
  """(rows, cols) of blocks where every index of `terms` is finite (a
  degenerate tile can make a baseline's NaN)."""
  return np.logical_and.reduce(
      [np.isfinite(t).all(axis=tuple(range(t.ndim - 2))) for t in terms.values()])


class BlockSums:
  """Running sums of one method's per-block indices over the kept blocks."""

  def __init__(self):
    self.sums, self.blocks, self.near_edge = {}, 0, 0

  def add(self, terms: dict[str, np.ndarray], keep: np.ndarray,
          near_edge: np.ndarray | None = None) -> None:
    """Adds the blocks where `keep` (rows x cols of blocks; `finite` blocks
    only); counts those that are `near_edge`."""
    for name, t in terms.items():
      self.sums[name] = self.sums.get(name, 0.0) + t[..., keep].sum(-1)
    self.blocks += int(keep.sum())
    if near_edge is not None:
      self.near_edge += int((keep & near_edge).sum())

  def indices(self) -> dict[str, float] | None:
    """The five indices of the blocks added so far (None: no block)."""
    if not self.blocks:
      return None
    m = {name: total / self.blocks for name, total in self.sums.items()}
    return metrics.full_indices(metrics.distortion(m["q_fused"], m["q_ms"]),
                                metrics.distortion(m["q_high"], m["q_low"]),
                                1.0 - float(m["q2n"]))


def _near(start: int, length: int, size: int, reach: int) -> np.ndarray:
  """Per block of [start, start + length) on an axis of `size` px: whether
  it lies within `reach` px of either end."""
  first = start + BLOCK * np.arange(length // BLOCK)
  return (first < reach) | (first + BLOCK > size - reach)


def _score_tile(scene, fused, methods, sums, window, sensor, kernels) -> None:
  """Adds the blocks of the tile `window` (row, col, rows, cols) to `sums`."""
  row, col, h, w = window
  r, scale = scene.ratio, np.float64(scene.max_value)
  near = _whole(_MTF_REACH, r)                       # fused pixels around the tile
  halo = _whole(LMS_HALO * r + 2 * _MTF_REACH, r)   # inputs around it (baselines)
  x = scene.read_inputs(row - halo, col - halo, h + 2 * halo, w + 2 * halo)
  core = np.s_[halo:halo + h, halo:halo + w]
  keep = x.valid[core].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).all((1, 3))
  if not keep.any():
    return
  reach = edge_reach(r)
  near_edge = (_near(row, h, scene.height, reach)[:, None]
               | _near(col, w, scene.width, reach)[None, :])
  pan = x.pan[..., 0] * scale
  ms_up, pan_lp = x.lms[core] * scale, metrics.pan_lowpass(pan, r)[core]
  around = np.s_[halo - near:halo + h + near, halo - near:halo + w + near]
  terms = {}
  for name, method in methods.items():
    if method is None:
      out = fused.read(row - near, col - near, h + 2 * near, w + 2 * near)
    else:  # a flat tile may divide by zero: its NaN blocks are dropped
      with np.errstate(divide="ignore", invalid="ignore"):
        out = method(x.ms * scale, pan, ratio=r, sensor=sensor)[around]
    out = nodata.fill(out.astype(np.float64), x.valid[around])
    x_lp = wald.mtf_filter(out, kernels)[near:-near, near:-near]
    terms[name] = block_terms(out[near:-near, near:-near], x_lp, ms_up, pan[core], pan_lp)
  # Every method on the same blocks: those where all of them are finite.
  keep = np.logical_and.reduce([keep] + [finite(t) for t in terms.values()])
  for name, method_terms in terms.items():
    sums[name].add(method_terms, keep, near_edge)


def score_scene(scene: Scene, fused: FusedImage, *, sensor: str, baselines: bool = False,
                progress: bool = True) -> dict:
  """Indices of `fused` (and of the baselines) on `scene` (module docstring)."""
  kernels = wald.mtf_kernels(sensor, scene.num_bands, scene.ratio)
  methods = {"model": None, **(baselines_lib.BASELINES if baselines else {})}
  sums = {name: BlockSums() for name in methods}
  rows, cols = scene.height // BLOCK * BLOCK, scene.width // BLOCK * BLOCK
  windows = [(y, x, min(TILE, rows - y), min(TILE, cols - x))
             for y in range(0, rows, TILE) for x in range(0, cols, TILE)]
  for window in tqdm.tqdm(windows, desc="metrics", unit="tile", disable=not progress,
                          leave=False):
    _score_tile(scene, fused, methods, sums, window, sensor, kernels)
  result = {"protocol": PROTOCOL, "sensor": sensor, "ratio": scene.ratio, "block": BLOCK,
            "blocks_in_scene": (rows // BLOCK) * (cols // BLOCK),
            "blocks_scored": sums["model"].blocks,
            "blocks_scored_by_method": {name: sums[name].blocks for name in methods},
            "blocks_near_edge": sums["model"].near_edge, "model": sums["model"].indices()}
  if baselines:
    result["baselines"] = {name: sums[name].indices() for name in baselines_lib.BASELINES}
  return result


def write_metrics(scene: Scene, out_path: str, *, sensor: str, baselines: bool = False,
                  progress: bool = True) -> str:
  """Scores the fused scene written at `out_path`; writes and returns
  `<out>_metrics.json`."""
  with geotiff.small_cache():
    fused = FusedImage(out_path)
    try:
      result = score_scene(scene, fused, sensor=sensor, baselines=baselines,
                           progress=progress)
    finally:
      fused.close()
  path = os.path.splitext(out_path)[0] + "_metrics.json"
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
  return path
