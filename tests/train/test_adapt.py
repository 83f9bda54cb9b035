"""adapt.py on small scenes: fixed scoring tiles and random training crops on
a scene with nodata, crop sizes the indices' 32 px blocks accept, and short
fine-tunes; the model is train_tiny's TinyNet with random weights (nothing
to restore, one small compile)."""

import math

import numpy as np
import pytest
import train_tiny

from pansharp_jax import adapt, errors, inference
from pansharp_jax.data import sources
from pansharp_jax.data.scene import ArrayScene


@pytest.fixture(scope="module")
def sample():
  """A 256 x 256 PAN px synthetic test sample, as uint16 DN (MS 64 x 64)."""
  config = train_tiny.config()
  config.data.synthetic.scene_size = 256
  x = sources.make_source(config.data, "test")[0]
  to_dn = lambda a: np.round(a * 2047).astype(np.uint16)
  return to_dn(x["ms"]), to_dn(x["pan"])


@pytest.fixture(scope="module")
def restored():
  model = train_tiny.tiny_model(4, dropout=0.0)
  z = np.zeros((1, 16, 16, 1), np.float32)
  variables = train_tiny.random_variables(
      model, {"ms": np.zeros((1, 4, 4, 4), np.float32), "pan": z, "lms": z.repeat(4, -1)},
      scale=0.1)
  return inference.Restored(model=model, variables=variables, step=0)


def _config(**adapt_fields):
  config = train_tiny.config()
  config.eval_batch_size = 2
  config.adapt.steps, config.adapt.lr, config.adapt.crop_size = 2, 1e-3, 64
  for key, value in adapt_fields.items():
    config.adapt[key] = value
  return config


def _right_half_nodata(ms, pan):
  ms, pan = ms.copy(), pan.copy()
  ms[:, ms.shape[1] // 2:] = 0
  pan[:, pan.shape[1] // 2:] = 0
  return ArrayScene(ms, pan, 4, 2047, nodata_value=0)


def test_nodata_scene_scores_as_its_valid_half_cut_out(sample, restored):
  """Right half nodata: the scoring tiles are the valid half's, scored as
  that half cut out as a scene; every training crop is at least half valid."""
  ms, pan = sample
  scene = _right_half_nodata(ms, pan)
  cut = ArrayScene(ms[:, :32], pan[:, :128], 4, 2047)
  origins = adapt.tile_origins(scene, 64, 8)
  assert origins == adapt.tile_origins(cut, 64, 8)
  assert origins == [(r, c) for r in (0, 64, 128, 192) for c in (0, 64)]
  fn = restored.batch_fn()
  before = adapt.score_tiles(fn, scene, origins, 64, "QB")
  assert before == pytest.approx(adapt.score_tiles(fn, cut, origins, 64, "QB"), abs=1e-12)

  crops = adapt.crop_origins(scene, 64, 32, np.random.default_rng(0))
  shares = [scene.read_inputs(r, c, 64, 64).valid.mean() for r, c in crops]
  assert min(shares) >= 0.5 and min(shares) < 1  # some cross into the nodata

  _, summary = adapt.adapt_scene(restored, scene, _config(), progress=False)
  assert summary["before"] == pytest.approx(before, abs=1e-12)
  assert summary["tiles"] == 8
  assert all(math.isfinite(v) for v in summary["last_loss"].values())


@pytest.mark.parametrize("pan_hw, image_size", [((48, 96), 64), ((96, 96), 48)])
def test_crop_rounds_to_whole_32_px_blocks(sample, restored, pan_hw, image_size):
  """A scene side under data.image_size, or a training size that is not a
  multiple of 32: the crop is rounded down to whole blocks of the indices."""
  ms, pan = sample
  h, w = pan_hw
  scene = ArrayScene(ms[:h // 4, :w // 4], pan[:h, :w], 4, 2047)
  config = _config(crop_size=0, steps=1)
  config.data.image_size = image_size
  assert adapt.crop_size(config, scene) == 32
  _, summary = adapt.adapt_scene(restored, scene, config, progress=False)
  assert summary["crop"] == 32 and 0 <= summary["after"]["qnr"] <= 1


def test_ceiling_window_wider_than_the_scene_crop_is_one_error(sample, restored):
  ms, pan = sample
  scene = ArrayScene(ms[:12, :24], pan[:48, :96], 4, 2047)
  config = _config(crop_size=0, ceiling_window=48)
  with pytest.raises(errors.DataError, match="^PAN: the scene's 32 px crops are smaller "
                     "than adapt.ceiling_window=48$"):
    adapt.fine_tune(restored.model, restored.variables, scene, config, progress=False)
