"""Wald's protocol: MTF filters, interpolation, decimation, degradation."""

import numpy as np
import pytest
from scipy import ndimage

from pansharp_jax.data import wald

# The toolbox's gains at Nyquist (DESIGN.md, "Metric conventions").
MS_GNYQ = {
    "QB": [0.34, 0.32, 0.30, 0.22],
    "IKONOS": [0.26, 0.28, 0.29, 0.28],
    "GeoEye1": [0.23] * 4,
    "WV2": [0.35] * 7 + [0.27],
    "WV3": [0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315],
    "GF2": [0.3] * 4,
    "generic": [0.3] * 8,
}
PAN_GNYQ = {"QB": 0.15, "IKONOS": 0.17, "GeoEye1": 0.16, "WV2": 0.11,
            "WV3": 0.14, "GF2": 0.15, "none": 0.15}


def _response(kernel, freq):
  """Frequency response of a 2-D kernel at (freq, 0) cycles per pixel."""
  n = np.arange(kernel.shape[1]) - (kernel.shape[1] - 1) / 2
  return float(np.real(np.sum(kernel.sum(0) * np.exp(-2j * np.pi * freq * n))))


@pytest.mark.parametrize("sensor", list(MS_GNYQ))
@pytest.mark.parametrize("ratio", [2, 4])
def test_ms_kernels_have_gnyq_at_nyquist(sensor, ratio):
  gains = MS_GNYQ[sensor]
  kernels = wald.mtf_kernels(sensor, len(gains), ratio)
  assert kernels.shape == (41, 41, len(gains))
  for k, gain in enumerate(gains):
    # The toolbox's design puts GNyq on the 41-point frequency grid's sample
    # nearest Nyquist, 40/41 of 1/(2 ratio) cycles per pixel ...
    assert _response(kernels[..., k], 40 / 41 / (2 * ratio)) == pytest.approx(
        gain, abs=1e-3)
    # ... so at exactly 1/(2 ratio) the gain is ~6% lower.
    assert 0.85 * gain < _response(kernels[..., k], 1 / (2 * ratio)) < gain
    # Unnormalised like MATLAB's fwind1: DC gain just under 1.
    assert _response(kernels[..., k], 0) == pytest.approx(1, abs=3e-3)


@pytest.mark.parametrize("sensor", list(PAN_GNYQ))
def test_pan_kernel_has_gnyq_at_nyquist(sensor):
  kernel = wald.mtf_pan_kernel(sensor)
  assert kernel.shape == (41, 41)
  assert _response(kernel, 40 / 41 / 8) == pytest.approx(PAN_GNYQ[sensor],
                                                         abs=1e-3)


def test_sensor_names():
  np.testing.assert_array_equal(wald.mtf_kernels("wv3", 8),
                                wald.mtf_kernels("WV3", 8))
  assert wald.pan_gain("geoeye1") == wald.pan_gain("GeoEye1")
  with pytest.raises(ValueError, match="unknown sensor"):
    wald.mtf_kernels("landsat", 4)
  with pytest.raises(ValueError, match="has 4 MS bands"):
    wald.mtf_kernels("QB", 8)
  assert wald.mtf_kernels("GF2", 3).shape[-1] == 3


def test_mtf_filter_is_replicate_padded_correlation():
  rng = np.random.default_rng(0)
  img = rng.uniform(0, 1, (24, 20, 2))
  kernels = rng.uniform(0, 1, (5, 5, 2))  # asymmetric: checks orientation
  expected = np.stack([ndimage.correlate(img[..., k], kernels[..., k],
                                         mode="nearest") for k in range(2)],
                      -1)
  np.testing.assert_allclose(wald.mtf_filter(img, kernels), expected,
                             rtol=1e-10)
  np.testing.assert_allclose(wald.mtf_filter(img[..., 0], kernels[..., 0]),
                             expected[..., 0], rtol=1e-10)


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_interp23tap_keeps_samples_exactly(ratio):
  lr = np.random.default_rng(1).uniform(0, 2047, (8, 6, 3))
  hr = wald.interp23tap(lr, ratio)
  assert hr.shape == (8 * ratio, 6 * ratio, 3)
  np.testing.assert_array_equal(hr[ratio // 2::ratio, ratio // 2::ratio], lr)


def test_interp23tap_reproduces_polynomials():
  # 12-point Lagrange: a cubic is exact away from the circular boundary.
  i = np.arange(32.0)
  lr = np.broadcast_to((0.01 * i**3 - i**2 + 3 * i)[:, None], (32, 4))
  hr = wald.interp23tap(lr, 4)
  x = (np.arange(128) - 2) / 4  # HR pixel j sits at LR coordinate (j-2)/4
  expected = 0.01 * x**3 - x**2 + 3 * x
  np.testing.assert_allclose(hr[40:88, 0], expected[40:88], rtol=1e-9)


def test_interp23tap_rejects_other_ratios():
  with pytest.raises(ValueError, match="power-of-2"):
    wald.interp23tap(np.zeros((4, 4, 1)), 3)


def test_bicubic_downsample_matches_matlab_geometry():
  ramp = np.broadcast_to(np.arange(64.0), (32, 64))
  low = wald.bicubic_downsample(ramp, 4)
  assert low.shape == (8, 16)
  # Output pixel i averages input pixels 4i..4i+3 symmetrically: centre 4i+1.5.
  np.testing.assert_allclose(low[:, 2:-2],
                             np.tile(np.arange(2, 14) * 4 + 1.5, (8, 1)))
  np.testing.assert_allclose(wald.bicubic_downsample(np.full((16, 16), 7.0),
                                                     4), 7.0)


def test_wald_degrade():
  rng = np.random.default_rng(2)
  ms = rng.uniform(0, 1, (32, 32, 4)).astype(np.float32)
  pan = rng.uniform(0, 1, (128, 128, 1)).astype(np.float32)
  out = wald.wald_degrade(ms, pan, "QB", 4)
  assert {k: v.shape for k, v in out.items()} == {
      "gt": (32, 32, 4), "ms": (8, 8, 4), "lms": (32, 32, 4),
      "pan": (32, 32, 1)}
  assert all(v.dtype == np.float32 for v in out.values())
  np.testing.assert_array_equal(out["gt"], ms)
  expected_ms = wald.mtf_filter(ms, wald.mtf_kernels("QB", 4))[2::4, 2::4]
  np.testing.assert_allclose(out["ms"], expected_ms, rtol=1e-6)
  np.testing.assert_allclose(out["lms"], wald.interp23tap(out["ms"], 4),
                             rtol=1e-5, atol=1e-6)
  assert wald.wald_degrade(ms, pan[..., 0], "QB", 4)["pan"].shape == (32, 32)


def test_wald_degrade_rejects_bad_shapes():
  ms = np.zeros((32, 32, 4))
  with pytest.raises(ValueError, match="not 4x MS"):
    wald.wald_degrade(ms, np.zeros((64, 64)), "QB", 4)
  with pytest.raises(ValueError, match="not a multiple of ratio"):
    wald.wald_degrade(np.zeros((30, 32, 4)), np.zeros((120, 128)), "QB", 4)
