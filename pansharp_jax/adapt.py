"""Target-adaptive fine-tuning on the scene itself (`--mode=adapt`).

The full-resolution framework of Ciotola et al., "Pansharpening by
convolutional neural networks in the full resolution framework" (IEEE TGRS
2022, Z-PNN): a trained model meets a new scene (another sensor, season or
area) without ground truth, so it is fine-tuned on crops of that very scene
with two no-reference losses (`losses.py`):
- spectral consistency: the output, blurred by the sensor's MS MTFs and
  decimated, must give back the observed MS;
- spatial consistency: each output band must correlate locally with the PAN
  as much as the upsampled band correlates with the low-passed PAN.
The EMA weights of the workdir are the starting point; only the params
move (Adam, `config.adapt.lr`), the model runs in eval mode (argmax routing,
no dropout). Quality is measured before and after on the same fixed tiles of
the scene with the full-resolution indices (D_lambda, D_s, QNR, HQNR).
Nodata (as `predict` reads it): training crops and scoring tiles are drawn
among the crops with at least MIN_VALID valid pixels, invalid pixels are
masked out of both losses, and only blocks free of nodata are scored.
"""

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from pansharp_jax import losses, metrics, predict, scene_metrics
from pansharp_jax.data import nodata, wald
from pansharp_jax.data.scene import Scene
from pansharp_jax.errors import DataError


# A crop (training or scoring) needs at least this share of valid pixels.
MIN_VALID = 0.5
_STRIP = 256  # MS rows read at a time for the valid grid


def crop_unit(ratio: int) -> int:
  """What a crop side must be a multiple of: 4 x ratio (the model's /4
  scales on the MS) and the indices' 32 px blocks."""
  return math.lcm(4 * ratio, scene_metrics.BLOCK)


def crop_size(config, scene: Scene) -> int:
  """Crop side in PAN px: `config.adapt.crop_size` or the training size, no
  larger than the scene, rounded down to a multiple of `crop_unit`; a
  DataError if no crop fits, or if it is smaller than the ceiling window."""
  unit = crop_unit(scene.ratio)
  wanted = int(config.adapt.crop_size or config.data.image_size)
  crop = min(wanted, scene.height, scene.width) // unit * unit
  if crop <= 0:
    raise DataError(f"{scene.pan_where}: the scene ({scene.height} x {scene.width} PAN "
                    f"px) is smaller than one {unit} px crop")
  # Here, not in fine_tune: before any tile is scored.
  if int(config.adapt.ceiling_window) > crop:
    raise DataError(f"{scene.pan_where}: the scene's {crop} px crops are smaller than "
                    f"adapt.ceiling_window={config.adapt.ceiling_window}")
  return crop


def _valid_ms_grid(scene: Scene) -> np.ndarray:
  """(h, w) at MS pixels: True where the MS pixel and its whole PAN footprint
  are valid; read in strips, so memory stays that of one strip."""
  r, h, w = scene.ratio, scene.height // scene.ratio, scene.width // scene.ratio
  grid = np.zeros((h, w), bool)
  for top in range(0, h, _STRIP):
    rows = min(_STRIP, h - top)
    pan_valid = scene.read_pan(top * r, 0, rows * r, w * r)[1]
    grid[top:top + rows] = (scene.read_ms(top, 0, rows, w)[1]
                            & pan_valid.reshape(rows, r, w, r).all((1, 3)))
  return grid


def _valid_shares(scene: Scene, crop: int) -> np.ndarray:
  """Share of valid MS pixels in the crop at every MS-grid origin:
  (rows, cols) for origins (i x ratio, j x ratio)."""
  size = crop // scene.ratio
  sums = np.pad(_valid_ms_grid(scene).cumsum(0, np.int32).cumsum(1), ((1, 0), (1, 0)))
  window = (sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size]
            + sums[:-size, :-size])
  return window / np.float32(size**2)


def tile_origins(scene: Scene, crop: int, count: int) -> list[tuple[int, int]]:
  """Up to `count` non-overlapping crops spread evenly over those of the
  scene that are at least MIN_VALID valid (the fixed tiles of the
  before/after measurement)."""
  shares, step = _valid_shares(scene, crop), crop // scene.ratio
  grid = [(i * scene.ratio, j * scene.ratio)
          for i in range(0, shares.shape[0], step) for j in range(0, shares.shape[1], step)
          if shares[i, j] >= MIN_VALID]
  if not grid:
    raise DataError(f"{scene.pan_where}: no {crop} px crop of the scene has "
                    f"{MIN_VALID:.0%} valid pixels (the rest is nodata)")
  picks = np.linspace(0, len(grid) - 1, min(count, len(grid))).round().astype(int)
  return [grid[i] for i in sorted(set(picks))]


def crop_origins(scene: Scene, crop: int, count: int, rng,
                 shares: np.ndarray | None = None) -> list[tuple[int, int]]:
  """`count` random crop origins on the MS grid (whole MS pixels), drawn
  uniformly among the crops that are at least MIN_VALID valid."""
  shares = _valid_shares(scene, crop) if shares is None else shares
  candidates = np.flatnonzero(shares >= MIN_VALID)
  rows, cols = np.unravel_index(rng.choice(candidates, count), shares.shape)
  return list(zip((rows * scene.ratio).tolist(), (cols * scene.ratio).tolist()))


def _batch(scene: Scene, origins, crop: int) -> dict[str, np.ndarray]:
  """The crops' model inputs, and `valid` (B, crop, crop, 1) float32."""
  tiles = [predict.model_inputs(scene, row, col, crop) for row, col in origins]
  batch = {k: np.stack([x[k] for x, _ in tiles]) for k in tiles[0][0]}
  batch["valid"] = np.stack([v for _, v in tiles])[..., None].astype(np.float32)
  return batch


def score_tiles(batch_fn, scene: Scene, origins, crop: int, sensor: str) -> dict:
  """Full-resolution indices of the model's output over the tiles' blocks
  without nodata: each tile is scored as `metrics.evaluate_full` scores an
  image (its own MS upsampled, PAN low-passed, MTF filter), and the blocks
  of all tiles are pooled as `scene_metrics` pools a scene's."""
  kernels = wald.mtf_kernels(sensor, scene.num_bands, scene.ratio)
  sums, scale = scene_metrics.BlockSums(), np.float64(scene.max_value)
  block = scene_metrics.BLOCK
  for row, col in origins:
    x = _batch(scene, [(row, col)], crop)
    valid = x["valid"][0, ..., 0] > 0
    fused = nodata.fill(np.asarray(batch_fn(x))[0].astype(np.float64) * scale, valid)
    ms_up = wald.interp23tap(x["ms"][0].astype(np.float64) * scale, scene.ratio)
    pan = x["pan"][0, ..., 0].astype(np.float64) * scale
    keep = valid.reshape(crop // block, block, crop // block, block).all((1, 3))
    terms = scene_metrics.block_terms(fused, wald.mtf_filter(fused, kernels), ms_up, pan,
                                      metrics.pan_lowpass(pan, scene.ratio))
    sums.add(terms, keep & scene_metrics.finite(terms))
  if not sums.blocks:
    raise DataError(f"{scene.pan_where}: no {block} px block of the {len(origins)} scoring "
                    "tiles is free of nodata")
  return sums.indices()


def make_step(model, model_state, optimizer, *, ratio: int, sensor: str,
              spatial_weight: float, ceiling_window: int):
  """Jitted (params, opt_state, batch) -> (params, opt_state, loss terms);
  the batch's `valid` mask keeps nodata out of both terms."""

  def loss_fn(params, batch):
    outputs = model.apply({"params": params, **model_state}, batch["ms"],
                          batch["pan"], batch["lms"], train=False)
    full = outputs[-1].astype(jnp.float32)
    valid = batch["valid"]
    spectral = losses.spectral_consistency_loss(full, batch["ms"], sensor, valid=valid)
    spatial = losses.spatial_consistency_loss(full, batch["pan"], batch["lms"], ratio,
                                              sensor, ceiling_window=ceiling_window,
                                              valid=valid)
    return spectral + spatial_weight * spatial, {"spectral": spectral,
                                                 "spatial": spatial}

  @jax.jit
  def step(params, opt_state, batch):
    (total, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": total, **terms}

  return step


def fine_tune(model, variables: dict, scene: Scene, config, *,
              progress: bool = True) -> tuple[dict, list[dict]]:
  """`config.adapt.steps` Adam steps on random crops of the scene (at least
  MIN_VALID valid; nodata masked out of the losses); returns the adapted
  variables and the per-step loss terms."""
  section = config.adapt
  crop = crop_size(config, scene)
  batch_size = int(section.batch_size or config.eval_batch_size)
  model_state = {k: v for k, v in variables.items() if k != "params"}
  optimizer = optax.adam(float(section.lr))
  step = make_step(model, model_state, optimizer, ratio=scene.ratio,
                   sensor=config.data.sensor,
                   spatial_weight=float(section.spatial_weight),
                   ceiling_window=int(section.ceiling_window))
  params = variables["params"]
  opt_state = optimizer.init(params)
  rng = np.random.default_rng(int(config.seed))
  shares = _valid_shares(scene, crop)
  history = []
  for _ in tqdm.trange(int(section.steps), desc="adapt", disable=not progress,
                       leave=False):
    batch = _batch(scene, crop_origins(scene, crop, batch_size, rng, shares), crop)
    params, opt_state, terms = step(params, opt_state, batch)
    history.append(terms)
  history = [{k: float(v) for k, v in t.items()} for t in jax.device_get(history)]
  return {"params": params, **model_state}, history


def adapt_scene(restored, scene: Scene, config, *,
                progress: bool = True) -> tuple[object, dict]:
  """Fine-tunes `restored` (inference.Restored) on `scene`; returns the
  adapted Restored and a summary with the indices before and after."""
  crop = crop_size(config, scene)
  origins = tile_origins(scene, crop, int(config.adapt.eval_tiles))
  sensor = config.data.sensor
  before = score_tiles(restored.batch_fn(), scene, origins, crop, sensor)
  start = time.perf_counter()
  variables, history = fine_tune(restored.model, restored.variables, scene, config,
                                 progress=progress)
  seconds = time.perf_counter() - start
  adapted = dataclasses.replace(restored, variables=variables)
  after = score_tiles(adapted.batch_fn(), scene, origins, crop, sensor)
  return adapted, {
      "before": before, "after": after, "steps": int(config.adapt.steps),
      "seconds": round(seconds, 1), "crop": crop, "tiles": len(origins),
      "first_loss": history[0] if history else None,
      "last_loss": history[-1] if history else None}
