"""Classical baselines: shapes, EXP, and ordering on a synthetic Wald scene."""

import numpy as np
import pytest
from scipy import ndimage

from configs import default
from pansharp_jax import baselines
from pansharp_jax import metrics
from pansharp_jax.data import wald
from pansharp_jax.data.synthetic import SyntheticSource

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


# --- Closed forms of the toolbox's formulas -----------------------------------
# Inputs built so that each method's regression or injection has an exact,
# hand-derivable answer; the low-pass and interpolation primitives are those
# of data/wald.py (constants pass through them unchanged).


def _pan(seed=30, size=32):
  """A smooth positive PAN (DN)."""
  rng = np.random.default_rng(seed)
  return 500 + 300 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 2,
                                             mode="wrap")


def _lowpass_decimated(pan, sensor="generic", nbands=1):
  """Each band's MTF low-pass of the PAN, decimated to MS size: (h, w, n)."""
  copies = np.repeat(pan[..., None], nbands, -1)
  return wald.decimate(wald.mtf_filter(copies,
                                       wald.mtf_kernels(sensor, nbands, 4)), 4)


def _std_mean(a):
  return a.std(), a.mean()


_LEVELS = np.array([100.0, 200.0, 300.0, 400.0])


@pytest.mark.parametrize("name", ["EXP", "BT-H"])
def test_flat_ms_passes_through(name):
  """A flat MS stays as it is under EXP and BT-H (whose haze-corrected MS is
  0). GS, GSA and MTF-GLP-FS would divide by its zero covariance."""
  ms = np.broadcast_to(_LEVELS, (8, 8, 4))
  fused = baselines.BASELINES[name](ms, _pan(), ratio=4, sensor="QB")
  np.testing.assert_allclose(fused, np.broadcast_to(_LEVELS, (32, 32, 4)),
                             rtol=1e-12)


def test_brovey_with_one_varying_band_is_its_matched_pan():
  """MS band 0 follows the low-passed PAN, band 1 is flat (c). The flat band
  works as the regression's intercept and its haze-corrected value is 0, so
  BT-H returns c there, and in band 0 PAN / I times (MS_0 - haze) reduces to
  the PAN matched to band 0: (P - mean P_lp) std(MS_0) / std(P_lp) + mean MS_0."""
  pan = _pan()
  ms = np.concatenate([_lowpass_decimated(pan), np.full((8, 8, 1), 250.0)], -1)
  fused = baselines.brovey(ms, pan, ratio=4)
  band0 = wald.interp23tap(ms, 4)[..., 0]
  pan_lp = wald.mtf_filter(pan[..., None], wald.mtf_kernels("generic", 1, 4))
  (s_ms, m_ms), (s_lp, m_lp) = _std_mean(band0), _std_mean(pan_lp)
  want = (pan - m_lp) * s_ms / s_lp + m_ms
  away_from_haze = band0 - band0.min() > 1e-6 * np.ptp(band0)
  np.testing.assert_allclose(fused[..., 0][away_from_haze],
                             want[away_from_haze], rtol=1e-9)
  np.testing.assert_allclose(fused[..., 1], 250.0, rtol=1e-12)


def test_gs_closed_forms():
  """GS injects g_k (P_eq - I), g_k = cov(I, MS_k) / var(I), I the band mean.
  With bands a_k m: g_k = a_k / mean(a), so fused_k = a_k / mean(a) P_eq, P_eq
  the PAN matched to I's mean and std. A PAN affine in I equals P_eq = I: EXP."""
  pan = _pan()
  a = np.array([0.5, 1.0, 1.5, 2.0])
  m = _lowpass_decimated(pan)
  ms = m * a
  intensity = wald.interp23tap(m, 4)[..., 0] * a.mean()
  (s_i, m_i), (s_p, m_p) = _std_mean(intensity), _std_mean(pan)
  pan_eq = (pan - m_p) * s_i / s_p + m_i
  np.testing.assert_allclose(baselines.gs(ms, pan, ratio=4),
                             pan_eq[..., None] * a / a.mean(), rtol=1e-9)
  np.testing.assert_allclose(baselines.gs(ms, 3 * intensity + 7, ratio=4),
                             baselines.exp(ms, pan, ratio=4), rtol=1e-9)


def test_gsa_of_an_affine_ms_returns_the_same_affine_pan():
  """MS_k = a_k m + b_k with m the low-passed, decimated, mean-removed PAN:
  the regression finds I = m exactly, the gains are a_k, and the fused band
  is a_k (P - mean P + mean m_up) + b_k, m_up = interp23tap(m)."""
  pan = _pan()
  a, b = np.array([0.5, 1.0, 1.5, 2.0]), np.array([300.0, 200.0, 100.0, 50.0])
  m = _lowpass_decimated(pan - pan.mean())
  m_up = wald.interp23tap(m, 4)
  want = (pan - pan.mean() + m_up.mean())[..., None] * a + b
  np.testing.assert_allclose(baselines.gsa(m * a + b, pan, ratio=4), want,
                             rtol=1e-9)


def test_mtf_glp_fs_of_mtf_degraded_pan_returns_the_pan():
  """MS_k = a_k MTF_k(P) decimated, + b_k: the upsampled MS is a_k P_lp,k + b_k,
  the full-scale gains are a_k, and the fused band is a_k P + b_k."""
  pan = _pan()
  a, b = np.array([0.5, 1.0, 1.5, 2.0]), np.array([300.0, 200.0, 100.0, 50.0])
  ms = _lowpass_decimated(pan, "QB", 4) * a + b
  np.testing.assert_allclose(baselines.mtf_glp(ms, pan, ratio=4, sensor="QB"),
                             pan[..., None] * a + b, rtol=1e-9)


def test_mtf_glp_hpm_closed_forms():
  """fused = MS_up * P_k / P_lp,k with P_k the PAN matched to MS_k's mean and
  std. A flat MS makes P_k flat, and P_lp,k is P_k times the DC gain of the
  band's 41-tap windowed MTF kernel (its sum, just under 1, as the toolbox's
  unnormalised `fwind1` design): fused = MS / that sum. Scaling the MS scales
  P_k and so the output; a PAN gain or offset is undone by the matching."""
  pan = _pan()
  flat = np.broadcast_to(_LEVELS, (8, 8, 4))
  dc_gain = wald.mtf_kernels("QB", 4, 4).sum((0, 1))
  np.testing.assert_allclose(
      baselines.mtf_glp_hpm(flat, pan, ratio=4, sensor="QB"),
      np.broadcast_to(_LEVELS / dc_gain, (32, 32, 4)), rtol=1e-9)
  ms = _lowpass_decimated(pan, "QB", 4) * np.array([0.5, 1.0, 1.5, 2.0]) + 100
  fused = baselines.mtf_glp_hpm(ms, pan, ratio=4, sensor="QB")
  np.testing.assert_allclose(
      baselines.mtf_glp_hpm(3 * ms, pan, ratio=4, sensor="QB"), 3 * fused,
      rtol=1e-9)
  np.testing.assert_allclose(
      baselines.mtf_glp_hpm(ms, 2 * pan + 40, ratio=4, sensor="QB"), fused,
      rtol=1e-9)


def test_mtf_glp_hpm_beats_exp_on_every_synthetic_scene():
  """Issue 17: on the old synthetic scenes (random spectra) one band could
  be uncorrelated with the PAN and vary more than its mean; the PAN matched
  to it went negative, PAN_LP crossed zero and HPM's ratio blew up (15.8 dB).
  With material spectra every band follows the PAN enough for HPM to work,
  as on real imagery: it beats EXP on each image."""
  config = default.get_config().data
  config.synthetic.num_val = 6
  source = SyntheticSource(config, "val")
  for i in range(len(source)):
    dn = {k: v.astype(np.float64) * source.max_value
          for k, v in source[i].items()}
    scores = {name: metrics.psnr(dn["gt"], fn(dn["ms"], dn["pan"], ratio=4,
                                                sensor="QB"), 2047)
              for name, fn in (("EXP", baselines.exp),
                               ("HPM", baselines.mtf_glp_hpm))}
    assert scores["HPM"] > scores["EXP"] + 1, (i, scores)
