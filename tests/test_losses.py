"""Loss terms against independent references (numpy, scikit-image)."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from configs import default
from pansharp_jax import losses


def _pair(seed=0, shape=(2, 32, 32, 3)):
  rng = np.random.default_rng(seed)
  target = rng.random(shape).astype(np.float32)
  pred = np.clip(target + 0.1 * rng.standard_normal(shape), 0, 1).astype(np.float32)
  return pred, target


def test_ssim_matches_scikit_image():
  pred, target = _pair()
  ours = 1.0 - float(losses.ssim_loss(jnp.asarray(pred), jnp.asarray(target)))
  theirs = np.mean([structural_similarity(
      target[i], pred[i], data_range=1.0, channel_axis=-1, gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False) for i in range(2)])
  assert ours == pytest.approx(theirs, abs=1e-4)


def test_gradient_loss_matches_numpy():
  pred, target = _pair(1)
  dy = np.abs(np.diff(pred, axis=1) - np.diff(target, axis=1)).mean()
  dx = np.abs(np.diff(pred, axis=2) - np.diff(target, axis=2)).mean()
  assert float(losses.gradient_loss(pred, target)) == pytest.approx(dy + dx, rel=1e-5)


def test_fft_loss_matches_numpy():
  pred, target = _pair(2)
  amp = lambda x: np.abs(np.fft.rfft2(x, axes=(1, 2), norm="ortho"))
  want = np.abs(amp(pred) - amp(target)).mean()
  assert float(losses.fft_loss(pred, target)) == pytest.approx(want, rel=1e-4)


def test_edge_loss_zero_on_identity_and_positive_otherwise():
  pred, target = _pair(3)
  assert float(losses.edge_loss(target, target)) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.edge_loss(pred, target)) > 0.01


def _ramp(slope, axis, shape=(1, 16, 16, 2)):
  """slope * (row or column index), the same in every band."""
  index = np.indices(shape[1:3])[axis].astype(np.float32)
  return np.broadcast_to((slope * index)[None, ..., None], shape)


def test_edge_loss_of_ramps_in_closed_form():
  """On a ramp of slope a, Sobel's [1 2 1] x [1 0 -1] gives 8a everywhere,
  so the loss is |sqrt(64 a^2 + eps) - sqrt(64 b^2 + eps)| (eps = 1e-6)."""
  magnitude = lambda a: np.sqrt(64 * a**2 + 1e-6)
  got = float(losses.edge_loss(_ramp(0.01, 1), _ramp(0.03, 1)))
  assert got == pytest.approx(abs(magnitude(0.01) - magnitude(0.03)), rel=1e-4)
  # Magnitudes ignore direction and offset: a row ramp against a column
  # ramp of the same slope, shifted by a constant, scores 0.
  assert float(losses.edge_loss(_ramp(0.02, 0) + 0.5, _ramp(0.02, 1))) == (
      pytest.approx(0.0, abs=1e-6))


def test_compute_losses_multiscale_targets_and_weights():
  _, gt = _pair(4, (1, 16, 16, 4))
  half = gt.reshape(1, 8, 2, 8, 2, 4).mean((2, 4))
  quarter = half.reshape(1, 4, 2, 4, 2, 4).mean((2, 4))
  config = default.get_config().loss
  # Perfect outputs at every scale: all terms vanish (SSIM to ~0).
  total, terms = losses.compute_losses((quarter, half, gt), {"gt": gt}, config)
  assert float(total) == pytest.approx(0.0, abs=1e-5)
  assert set(terms) == {"l1", "gradient", "ssim", "edge", "fft"}
  # Only the 1/4 output off by 0.1: L1 term is scale weight * 0.1.
  _, terms = losses.compute_losses((quarter + 0.1, half, gt), {"gt": gt}, config)
  assert float(terms["l1"]) == pytest.approx(config.scale_weights[2] * 0.1, rel=1e-4)


@pytest.mark.parametrize("from_ratio", [2, 4])
def test_multiscale_terms_apply_from_their_ratio_on(from_ratio):
  _, gt = _pair(4, (1, 16, 16, 4))
  half = gt.reshape(1, 8, 2, 8, 2, 4).mean((2, 4))
  quarter = half.reshape(1, 4, 2, 4, 2, 4).mean((2, 4))
  config = default.get_config().loss
  config.multiscale_from_ratio = from_ratio
  outputs = (quarter + 0.1, half + 0.2, gt)  # the coarse outputs off
  w_half, w_quarter = config.scale_weights[1:]
  for ratio, ms in ((2, half), (4, quarter)):
    _, terms = losses.compute_losses(outputs, {"gt": gt, "ms": ms}, config)
    expected = w_half * 0.2 + w_quarter * 0.1 if ratio >= from_ratio else 0.0
    assert float(terms["l1"]) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_weighted_total_of_non_zero_terms():
  """The total is the weighted sum of the terms, weights other than 1
  included (a total of unweighted terms must fail this)."""
  config = ml_collections.ConfigDict(
      {"l1": 2.0, "gradient": 0.3, "ssim": 0.2, "edge": 0.15, "fft": 0.1,
       "scale_weights": (1.0, 0.5, 0.25)})
  pred, gt = _pair(6, (2, 16, 16, 4))
  total, terms = losses.compute_losses((pred,), {"gt": gt}, config)
  assert set(terms) == {"l1", "gradient", "ssim", "edge", "fft"}
  assert min(float(t) for t in terms.values()) > 1e-3
  expected = sum(config[name] * float(t) for name, t in terms.items())
  assert float(total) == pytest.approx(expected, rel=1e-5)
  assert abs(float(total) - sum(float(t) for t in terms.values())) > 1e-2


def test_zero_weight_terms_are_skipped():
  config = ml_collections.ConfigDict(
      {"l1": 1.0, "gradient": 0.0, "ssim": 0.0, "edge": 0.0, "fft": 0.0,
       "scale_weights": (1.0, 0.5, 0.25)})
  _, gt = _pair(5, (1, 16, 16, 3))
  half = losses.avg_pool2(gt)
  _, terms = losses.compute_losses((losses.avg_pool2(half), half, gt), {"gt": gt}, config)
  assert set(terms) == {"l1"}


def test_dsc_uses_the_sensor_mtf_table():
  rng = np.random.default_rng(3)
  pan = jnp.asarray(rng.random((1, 32, 32, 1)), jnp.float32)
  ms = jnp.asarray(rng.random((1, 8, 8, 4)), jnp.float32)
  pred = jnp.asarray(rng.random((1, 32, 32, 4)), jnp.float32)
  qb = float(losses.dsc_loss(pred, pan, ms, "QB"))
  assert np.isfinite(qb) and qb != float(losses.dsc_loss(pred, pan, ms, "generic"))
  # An 8-band table for 4 bands is an error (config_checks reports it first).
  with pytest.raises(ValueError, match="8 MS bands"):
    losses.dsc_loss(pred, pan, ms, "WV3")


def test_dsc_of_a_constant_prediction_in_closed_form():
  """A constant PAN is fitted exactly by the regression's constant term, so
  the PAN term vanishes; the MTF keeps a constant prediction c constant, so
  the MS term is the mean of |c_k - MS_k|."""
  rng = np.random.default_rng(4)
  ms = rng.uniform(0.2, 0.8, (2, 8, 8, 4)).astype(np.float32)
  pan = np.full((2, 32, 32, 1), 0.6, np.float32)
  c = np.array([0.3, 0.5, 0.4, 0.7], np.float32)
  pred = np.broadcast_to(c, (2, 32, 32, 4))
  want = np.abs(c - ms).mean()
  assert float(losses.dsc_loss(pred, pan, ms, "QB")) == pytest.approx(want,
                                                                       rel=1e-4)


def test_mtf_blur_has_the_sensor_gain_at_nyquist():
  """A constant passes unchanged; a cosine at the MS Nyquist frequency (period
  2 x ratio PAN pixels) comes out scaled by the band's gain (centre of the
  image, away from the reflected borders)."""
  ratio, gains = 4, [0.3, 0.15]
  x = np.arange(64, dtype=np.float32)
  wave = np.broadcast_to(np.cos(np.pi * x / ratio)[None, None, :, None],
                         (1, 64, 64, 2))
  blurred = np.asarray(losses.mtf_blur(0.5 + wave, gains, ratio))
  centre = blurred[0, 24:40, 24:40] - 0.5
  for band, gain in enumerate(gains):
    np.testing.assert_allclose(centre[..., band], gain * wave[0, 24:40, 24:40, band],
                               atol=2e-3)


def _cosine(cycles, size=32):
  """cos(2 pi cycles x / size) along the columns: one rfft2 bin."""
  x = np.arange(size) / size
  return np.broadcast_to(np.cos(2 * np.pi * cycles * x), (size, size))


def test_wacx_of_bands_sharing_the_pan_structure_is_zero():
  """Gains and offsets per band, or on the PAN, do not change a normalised
  high-pass amplitude spectrum."""
  rng = np.random.default_rng(5)
  structure = rng.standard_normal((1, 32, 32, 1)).astype(np.float32)
  pred = structure * np.array([0.5, 1.0, 2.0]) + np.array([0.1, 0.2, 0.3])
  pan = 3.0 * structure + 1.0
  assert float(losses.wacx_loss(pred, pan)) == pytest.approx(0.0, abs=1e-5)


def test_wacx_of_two_cosines_in_closed_form():
  """Band 0 a cosine of 5 cycles (the PAN's), band 1 of 9: each normalised
  spectrum is M = 32 x 17 at its own bin. Cross-band: the mean spectrum is
  M/2 at both bins, |M - M/2| + |0 - M/2| per band over M bins: 1. PAN gate:
  1 at the PAN's bin only, where the intensity has M/2 against the PAN's M:
  (M/2) / M = 1/2, weighted 0.5. Total 1.25."""
  pred = np.stack([_cosine(5), _cosine(9)], -1)[None].astype(np.float32)
  pan = _cosine(5)[None, ..., None].astype(np.float32)
  assert float(losses.wacx_loss(pred, pan)) == pytest.approx(1.25, rel=1e-4)


def test_single_scale_outputs_take_only_the_full_resolution_l1():
  _, gt = _pair(6, (1, 16, 16, 4))
  config = default.get_config().loss
  _, terms = losses.compute_losses((gt + 0.1,), {"gt": gt}, config)
  assert float(terms["l1"]) == pytest.approx(config.scale_weights[0] * 0.1, rel=1e-4)
  assert set(terms) == {"l1", "gradient", "ssim", "edge", "fft"}
  with pytest.raises(ValueError, match=r"outputs: \(full,\) or \(sr_1_4, sr_1_2, full\), got 2"):
    losses.compute_losses((gt, gt), {"gt": gt}, config)


# ---- Z-PNN's full-resolution terms (--mode=adapt) ----

def _window_corr(a, b, window):
  """Pearson correlation of 2D `a` and `b` in every window x window
  neighbourhood ('valid'), by np.corrcoef window by window."""
  rows, cols = a.shape[0] - window + 1, a.shape[1] - window + 1
  out = np.zeros((rows, cols))
  for i in range(rows):
    for j in range(cols):
      wa, wb = a[i:i + window, j:j + window].ravel(), b[i:i + window, j:j + window].ravel()
      out[i, j] = np.corrcoef(wa, wb)[0, 1] if wa.std() and wb.std() else 0.0
  return out


@pytest.mark.parametrize("window", [4, 16])
def test_local_correlation_matches_numpy_windows(window):
  rng = np.random.default_rng(6)
  a = rng.random((1, 20, 20, 2)).astype(np.float32)
  b = (0.5 * a + 0.5 * rng.random(a.shape)).astype(np.float32)
  got = np.asarray(losses.local_correlation(a, b, window))
  for band in range(2):
    np.testing.assert_allclose(got[0, ..., band], _window_corr(a[0, ..., band], b[0, ..., band],
                                                               window), atol=1e-4)


def test_local_correlation_of_an_affine_copy_is_one_in_smooth_areas():
  """Variations of a few 11-bit DN (variances ~1e-7 in [0, 1] units): the
  correlation of an image with a gain-and-offset copy of itself is 1, not
  pulled to 0 by an epsilon beside var x var ~1e-14; flat windows give 0."""
  rng = np.random.default_rng(7)
  a = (0.4 + rng.integers(0, 4, (1, 16, 16, 1)) / 2047).astype(np.float32)
  a[0, :4, :4] = 0.4  # one flat window
  corr = np.asarray(losses.local_correlation(a, 0.2 + 0.5 * a, 4))[0, ..., 0]
  assert corr[0, 0] == 0.0
  np.testing.assert_allclose(corr[4:, 4:], 1.0, atol=1e-3)


def _spatial_reference(pred, pan, lms, pan_lp, ratio, window):
  """Z-PNN's structural loss in numpy: 1 - rho (ratio px windows of each band
  with the PAN) where rho is below rho_max (`window` px windows of the
  upsampled band with the low-passed PAN), 0 elsewhere; windows centred on
  the same point, the mean over the positions where both fit."""
  offset = (window - ratio) // 2
  terms = []
  for band in range(pred.shape[-1]):
    ceiling = _window_corr(lms[0, ..., band], pan_lp[0, ..., 0], window)
    rho = _window_corr(pred[0, ..., band], pan[0, ..., 0], ratio)
    rho = rho[offset:offset + ceiling.shape[0], offset:offset + ceiling.shape[1]]
    terms.append(np.where(rho < ceiling, 1.0 - rho, 0.0))
  return np.mean(terms)


def _adapt_inputs(seed=8, size=24):
  rng = np.random.default_rng(seed)
  pan = rng.random((1, size, size, 1)).astype(np.float32)
  lms = (0.6 * pan + 0.4 * rng.random((1, size, size, 2))).astype(np.float32)
  pred = (0.5 * pan + 0.5 * rng.random((1, size, size, 2))).astype(np.float32)
  return pred, pan, lms


def test_spatial_consistency_matches_z_pnn_reference():
  pred, pan, lms = _adapt_inputs()
  pan_lp = np.asarray(losses.mtf_blur(pan, [0.15], 4))  # the QB PAN gain
  want = _spatial_reference(pred, pan, lms, pan_lp, 4, 16)
  got = losses.spatial_consistency_loss(pred, pan, lms, 4, "QB", ceiling_window=16)
  assert float(got) == pytest.approx(want, rel=1e-4)


def test_spatial_consistency_of_bands_correlated_with_the_pan_is_zero():
  """rho = 1 reaches any ceiling: nothing left to push."""
  _, pan, lms = _adapt_inputs()
  pred = np.concatenate([0.5 * pan + 0.1, 0.8 * pan], -1)
  loss = losses.spatial_consistency_loss(pred, pan, lms, 4, "QB", ceiling_window=16)
  assert float(loss) == pytest.approx(0.0, abs=1e-5)


def test_spatial_consistency_ignores_windows_touching_invalid_pixels():
  pred, pan, lms = _adapt_inputs(size=32)
  valid = np.ones((1, 32, 32, 1), np.float32)
  valid[:, :, 20:] = 0
  other = pred.copy()
  other[:, :, 20:] = 1.0 - other[:, :, 20:]
  loss = lambda p: float(losses.spatial_consistency_loss(p, pan, lms, 4, "QB",
                                                         ceiling_window=16, valid=valid))
  assert loss(pred) == loss(other)
  # Windows of 16 px ending before column 20: the reference on those columns.
  pan_lp = np.asarray(losses.mtf_blur(pan, [0.15], 4))
  want = _spatial_reference(pred[:, :, :20], pan[:, :, :20], lms[:, :, :20],
                            pan_lp[:, :, :20], 4, 16)
  assert loss(pred) == pytest.approx(want, rel=1e-4)


def test_spectral_consistency_of_constants_in_closed_form_and_masked():
  """The MTF keeps a constant c constant, so the term is the mean |c - MS|;
  MS pixels whose PAN footprint is not all valid are left out."""
  ms = np.full((1, 8, 8, 2), 0.5, np.float32)
  ms[:, :, 6:] = 0.9
  pred = np.full((1, 32, 32, 2), 0.5, np.float32)
  assert float(losses.spectral_consistency_loss(pred, ms)) == pytest.approx(
      0.4 * 2 / 8, rel=1e-4)
  valid = np.ones((1, 32, 32, 1), np.float32)
  valid[:, :, 23:] = 0  # MS column 5 has one invalid PAN column: out as well
  masked = losses.spectral_consistency_loss(pred, ms, valid=valid)
  assert float(masked) == pytest.approx(0.0, abs=1e-6)
  ms[:, :, 5] = 0.7
  masked = losses.spectral_consistency_loss(pred, ms, valid=valid)
  assert float(masked) == pytest.approx(0.0, abs=1e-6)
  valid[:, :, 20:] = 1
  valid[:, :, 24:] = 0
  masked = losses.spectral_consistency_loss(pred, ms, valid=valid)
  assert float(masked) == pytest.approx(0.2 / 6, rel=1e-4)
