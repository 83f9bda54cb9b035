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
"""

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from pansharp_jax import losses, metrics, predict
from pansharp_jax.data.scene import Scene
from pansharp_jax.errors import DataError


def crop_size(config, scene: Scene) -> int:
  """Crop side in PAN px: `config.adapt.crop_size` or the training size, no
  larger than the scene, a multiple of 4 x ratio (what the model takes)."""
  unit = 4 * scene.ratio
  wanted = int(config.adapt.crop_size or config.data.image_size)
  crop = min(wanted, scene.height, scene.width) // unit * unit
  if crop <= 0:
    raise DataError(f"{scene.pan_where}: the scene ({scene.height} x {scene.width} PAN "
                    f"px) is smaller than one {unit} px crop")
  return crop


def tile_origins(scene: Scene, crop: int, count: int) -> list[tuple[int, int]]:
  """Up to `count` non-overlapping crops spread evenly over the scene (the
  fixed tiles of the before/after measurement)."""
  grid = [(r, c) for r in range(0, scene.height - crop + 1, crop)
          for c in range(0, scene.width - crop + 1, crop)]
  picks = np.linspace(0, len(grid) - 1, min(count, len(grid))).round().astype(int)
  return [grid[i] for i in sorted(set(picks))]


def _random_origins(scene: Scene, crop: int, count: int, rng) -> list[tuple[int, int]]:
  """Random crop origins on the MS grid (whole MS pixels)."""
  r = scene.ratio
  rows = rng.integers(0, (scene.height - crop) // r + 1, count) * r
  cols = rng.integers(0, (scene.width - crop) // r + 1, count) * r
  return list(zip(rows.tolist(), cols.tolist()))


def _batch(scene: Scene, origins, crop: int) -> dict[str, np.ndarray]:
  tiles = [predict.model_inputs(scene, row, col, crop)[0] for row, col in origins]
  return {k: np.stack([t[k] for t in tiles]) for k in tiles[0]}


def score_tiles(batch_fn, scene: Scene, origins, crop: int, sensor: str) -> dict:
  """Mean full-resolution indices of the model's output over the tiles."""
  rows = []
  for row, col in origins:
    x = _batch(scene, [(row, col)], crop)
    fused = np.asarray(batch_fn(x))[0].astype(np.float64) * scene.max_value
    rows.append(metrics.evaluate_full(
        fused, x["ms"][0].astype(np.float64) * scene.max_value,
        x["pan"][0, ..., 0].astype(np.float64) * scene.max_value,
        ratio=scene.ratio, sensor=sensor))
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def make_step(model, model_state, optimizer, *, ratio: int, sensor: str,
              spatial_weight: float):
  """Jitted (params, opt_state, batch) -> (params, opt_state, loss terms)."""

  def loss_fn(params, batch):
    outputs = model.apply({"params": params, **model_state}, batch["ms"],
                          batch["pan"], batch["lms"], train=False)
    full = outputs[-1].astype(jnp.float32)
    spectral = losses.spectral_consistency_loss(full, batch["ms"], sensor)
    spatial = losses.spatial_consistency_loss(full, batch["pan"], batch["lms"],
                                              ratio, sensor)
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
  """`config.adapt.steps` Adam steps on random crops of the scene; returns
  the adapted variables and the per-step loss terms."""
  section = config.adapt
  crop = crop_size(config, scene)
  batch_size = int(section.batch_size or config.eval_batch_size)
  model_state = {k: v for k, v in variables.items() if k != "params"}
  optimizer = optax.adam(float(section.lr))
  step = make_step(model, model_state, optimizer, ratio=scene.ratio,
                   sensor=config.data.sensor,
                   spatial_weight=float(section.spatial_weight))
  params = variables["params"]
  opt_state = optimizer.init(params)
  rng = np.random.default_rng(int(config.seed))
  history = []
  for _ in tqdm.trange(int(section.steps), desc="adapt", disable=not progress,
                       leave=False):
    batch = _batch(scene, _random_origins(scene, crop, batch_size, rng), crop)
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
