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
