"""Classical baselines: shapes, EXP, and ordering on a synthetic Wald scene."""

import numpy as np
import pytest
from scipy import ndimage

from pansharp_jax import baselines
from pansharp_jax import metrics
from pansharp_jax.data import wald

_PAN_WEIGHTS = np.array([0.15, 0.3, 0.35, 0.2])


def _scene(seed, size, nbands=4):
  """DN scene: smooth fields, sharp discs, striped texture; mixed spectra."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size] / size
  smooth = ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 16,
                                   mode="wrap")
  smooth = (smooth - smooth.min()) / np.ptp(smooth)
  discs = np.zeros((size, size))
  for _ in range(12):
    cy, cx, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(.03, .1)
    discs[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.uniform(-1, 1)
  stripes = np.sin(2 * np.pi * (0.8 * xx + 0.6 * yy) * size / 7)
  abundances = np.stack([smooth, 1 - smooth, np.clip(discs, 0, 1),
                         np.clip(-discs, 0, 1)], -1)
  scene = abundances @ rng.uniform(0.2, 1.0, (4, nbands))
  scene *= 1 + 0.15 * (stripes * (smooth > 0.5))[..., None]
  return 100 + 1500 * scene + rng.normal(0, 5, scene.shape)


@pytest.fixture(scope="module")
def wald_triple():
  """A QuickBird-like reduced-resolution triple: GT 128x128x4, MS 32x32."""
  fine = _scene(0, 512)
  ms_full = wald.decimate(wald.mtf_filter(fine, wald.mtf_kernels("QB", 4)), 4)
  pan_full = fine @ _PAN_WEIGHTS
  return wald.wald_degrade(ms_full, pan_full, "QB", 4)


@pytest.fixture(scope="module")
def scores(wald_triple):
  return {name: metrics.evaluate_reduced(
      wald_triple["gt"], fn(wald_triple["ms"], wald_triple["pan"], ratio=4,
                            sensor="QB"), data_range=2047)
          for name, fn in baselines.BASELINES.items()}


def test_registry():
  assert list(baselines.BASELINES) == ["EXP", "BT-H", "GS", "GSA",
                                       "MTF-GLP-FS", "MTF-GLP-HPM"]


@pytest.mark.parametrize("name", list(baselines.BASELINES))
def test_shapes_and_pan_layouts(wald_triple, name):
  fn = baselines.BASELINES[name]
  ms, pan = wald_triple["ms"], wald_triple["pan"]
  fused = fn(ms, pan, ratio=4, sensor="QB")
  assert fused.shape == (128, 128, 4) and np.isfinite(fused).all()
  np.testing.assert_allclose(fn(ms, pan[..., None], ratio=4, sensor="QB"),
                             fused)


def test_exp_is_interp23tap(wald_triple):
  np.testing.assert_array_equal(
      baselines.exp(wald_triple["ms"], wald_triple["pan"], 4),
      wald.interp23tap(wald_triple["ms"], 4))


@pytest.mark.parametrize("name", ["GS", "MTF-GLP-FS"])
def test_pansharpening_beats_exp(scores, name):
  assert scores[name]["ergas"] < scores["EXP"]["ergas"]
  assert scores[name]["q2n"] > scores["EXP"]["q2n"]


@pytest.mark.parametrize("name", ["BT-H", "GSA", "MTF-GLP-HPM"])
def test_other_methods_beat_exp_on_ergas(scores, name):
  assert scores[name]["ergas"] < scores["EXP"]["ergas"]


def test_shape_mismatch_is_an_error():
  with pytest.raises(ValueError, match="not 4x MS"):
    baselines.gs(np.zeros((8, 8, 4)), np.zeros((30, 32)), ratio=4)
