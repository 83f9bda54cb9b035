"""The synthetic source: shapes, ranges, determinism, spectral/spatial
structure and the sensor model (PAN response, misregistration)."""

import numpy as np
import pytest

from configs import default
from pansharp_jax import config_checks, errors
from pansharp_jax.data import spectra, synthetic, wald
from pansharp_jax.data.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def data_config():
  config = default.get_config().data
  config.synthetic.scene_size = 32
  config.synthetic.num_train = 3
  return config


def test_shapes_and_ranges(data_config):
  sample = SyntheticSource(data_config, "train")[0]
  assert sample["gt"].shape == (32, 32, 4)
  assert sample["ms"].shape == (8, 8, 4)
  assert sample["lms"].shape == (32, 32, 4)
  assert sample["pan"].shape == (32, 32, 1)
  for key, value in sample.items():
    assert value.dtype == np.float32, key
    assert 0.0 <= value.min() and value.max() <= 1.0, key
  for key in ("gt", "ms", "pan"):
    # Values are whole sensor units (DN), as real data.
    dn = sample[key] * data_config.max_value
    np.testing.assert_allclose(dn, np.round(dn), atol=1e-3, err_msg=key)


def test_deterministic_and_split_dependent(data_config):
  a = SyntheticSource(data_config, "train")[1]
  b = SyntheticSource(data_config, "train")[1]
  c = SyntheticSource(data_config, "val")[1]
  np.testing.assert_array_equal(a["gt"], b["gt"])
  assert np.abs(a["gt"] - c["gt"]).mean() > 1e-3
  assert np.abs(a["gt"] - SyntheticSource(data_config, "train")[2]["gt"]).mean() > 1e-3


def test_length_and_bounds(data_config):
  source = SyntheticSource(data_config, "train")
  assert len(source) == 3
  with pytest.raises(IndexError):
    source[3]


def test_has_structure_and_correlated_bands(data_config):
  gt = SyntheticSource(data_config, "train")[0]["gt"]
  # Spatial structure: neighbouring pixels correlate far more than random.
  flat = gt[..., 0]
  assert np.corrcoef(flat[:, 1:].ravel(), flat[:, :-1].ravel())[0, 1] > 0.5
  # Edges: some large jumps between neighbours.
  assert np.abs(np.diff(flat, axis=1)).max() > 0.05
  # PAN follows the scene's brightness, as the mean of the bands does.
  sample = SyntheticSource(data_config, "train")[0]
  mean = sample["gt"].mean(-1)
  assert np.corrcoef(mean.ravel(), sample["pan"].ravel())[0, 1] > 0.8


def _linear_fit_residual(bands, target):
  """RMS residual of the least-squares fit of `target` by the bands and a
  constant, relative to the target's std."""
  design = np.concatenate([bands, np.ones_like(bands[:, :1])], 1)
  weights = np.linalg.lstsq(design, target, rcond=None)[0]
  return np.std(target - design @ weights) / np.std(target)


def test_pan_is_not_a_linear_mix_of_the_ms_bands():
  """The PAN response covers the red edge, which no QuickBird-like band does:
  on vegetation the PAN is not any linear combination of the MS bands."""
  residuals = []
  for seed in range(4):
    scene = synthetic.render_scene(np.random.default_rng(seed), 96, 4)
    flat = scene.reshape(-1, 5).astype(np.float64)
    residuals.append(_linear_fit_residual(flat[:, :4], flat[:, 4]))
    # The fit itself is sound: a PAN that is a mix of the bands fits exactly.
    assert _linear_fit_residual(flat[:, :4], flat[:, :4] @ [.2, .3, .3, .2]) < 1e-6
  assert np.mean(residuals) > 0.01, residuals


def test_spectral_responses():
  for bands in (3, 4, 5, 8):
    responses = spectra.band_responses(bands)
    assert responses.shape == (bands, len(spectra.WAVELENGTHS))
    np.testing.assert_allclose(responses.sum(1), 1, rtol=1e-6)
    # Bands in wavelength order, each inside the PAN's range or near it.
    centres = responses @ spectra.WAVELENGTHS
    assert np.all(np.diff(centres) > 0)
  pan = spectra.pan_response(4)
  assert pan @ spectra.WAVELENGTHS == pytest.approx(675, abs=10)


def test_misregistration_moves_the_ms_against_the_pan():
  rng = np.random.default_rng(0)
  shifts = np.array([synthetic.misregistration(rng) for _ in range(200)])
  lengths = np.hypot(*shifts.T)
  assert lengths.max() <= synthetic.MAX_SHIFT and lengths.mean() > 0.3
  # MS pixel centres one MS pixel (4 PAN pixels) further right: the MS
  # content moves one pixel left, the PAN stays (same seed: same noise).
  scene = synthetic.render_scene(np.random.default_rng(1), 64, 4)
  gains = wald.ms_gains("QB", 4)
  ms0, pan0 = synthetic.image_scene(scene, (0, 0), gains, 4,
                                    np.random.default_rng(2))
  ms1, pan1 = synthetic.image_scene(scene, (0, 4), gains, 4,
                                    np.random.default_rng(2))
  np.testing.assert_array_equal(pan0, pan1)
  moved = np.abs(ms1[:, :-2] - ms0[:, 1:-1]).mean()
  assert moved < 0.3 * np.abs(ms1 - ms0).mean()
  assert np.abs(ms1 - ms0).mean() > 0.005


def test_the_source_draws_a_shift_per_scene(data_config, monkeypatch):
  source = SyntheticSource(data_config, "train")
  drawn = source._render(0)
  draw = synthetic.misregistration

  def no_shift(rng, max_shift):
    draw(rng, max_shift)  # the same random draws, so the rest of the scene is unchanged
    return (0.0, 0.0)

  monkeypatch.setattr(synthetic, "misregistration", no_shift)
  aligned = source._render(0)
  assert np.abs(drawn["gt"] - aligned["gt"]).max() > 2 / 2047
  np.testing.assert_array_equal(drawn["pan"], aligned["pan"])


def test_wald_protocol_with_the_sensor_mtf(data_config):
  sample = SyntheticSource(data_config, "train")[0]
  # MS is GT through the sensor's MTF filters, decimated at offset 2 (up to
  # the DN rounding of both).
  kernels = wald.mtf_kernels(data_config.sensor, 4, 4)
  expected = wald.decimate(wald.mtf_filter(sample["gt"], kernels), 4)
  np.testing.assert_allclose(sample["ms"], expected,
                             atol=1.5 / data_config.max_value)
  # ... and the filter is not a no-op.
  assert np.abs(sample["ms"] - sample["gt"][2::4, 2::4]).max() > 5 / 2047
  # lms is interp23tap of MS: the MS samples pass through exactly.
  np.testing.assert_array_equal(sample["lms"][2::4, 2::4], sample["ms"])
  np.testing.assert_allclose(
      sample["lms"], np.clip(wald.interp23tap(sample["ms"], 4), 0, 1),
      atol=1e-6)
  assert sample["lms"].std() < sample["gt"].std()


@pytest.mark.parametrize("bands, sensor", [(3, "generic"), (4, "IKONOS"),
                                           (8, "WV3")])
def test_every_band_count_renders_distinct_bands(data_config, bands, sensor):
  """3, 4 and 8 bands: samples of that band count whose bands are different
  spectra, not copies, and a PAN that follows their spectral mix."""
  config = data_config.copy_and_resolve_references()
  config.num_bands, config.sensor = bands, sensor
  sample = SyntheticSource(config, "train")[0]
  assert sample["gt"].shape == (32, 32, bands)
  assert sample["ms"].shape == (8, 8, bands)
  gt = sample["gt"].reshape(-1, bands)
  correlation = np.corrcoef(gt.T)[np.triu_indices(bands, 1)]
  assert correlation.max() < 0.999
  pan = sample["pan"].reshape(-1).astype(np.float64)
  assert _linear_fit_residual(gt.astype(np.float64), pan) < 0.5


def test_sensor_changes_the_degradation(data_config):
  other = data_config.copy_and_resolve_references()
  other.sensor = "IKONOS"
  a = SyntheticSource(data_config, "train")[0]
  b = SyntheticSource(other, "train")[0]
  assert np.abs(a["ms"] - b["ms"]).max() > 1 / 2047


def test_config_check_pairs_sensor_and_bands():
  config = default.get_config()
  config_checks.validate(config)
  config.data.sensor = "WV3"
  with pytest.raises(errors.ConfigError,
                     match=r"^config\.data\.sensor: .*8 MS bands.*qb"):
    config_checks.validate(config)
  config.data.num_bands = 8
  config_checks.validate(config)
  for sensor in ("generic", "GF2"):  # fit any band count
    config.data.sensor = sensor
    config_checks.validate(config)
  config.data.sensor = "nope"
  with pytest.raises(errors.ConfigError, match="unknown sensor"):
    config_checks.validate(config)


def test_band_count_mismatch_fails_early(data_config):
  wrong = data_config.copy_and_resolve_references()
  wrong.sensor = "WV3"
  with pytest.raises(ValueError, match="8 MS bands"):
    SyntheticSource(wrong, "train")


@pytest.mark.parametrize("cache_mb", [0, 1])
def test_cached_samples_equal_fresh_renders(data_config, cache_mb):
  """The cache returns copies: a consumer writing into a sample (in-place
  augmentation) cannot change what the next epoch sees."""
  config = data_config.copy_and_resolve_references()
  config.synthetic.cache_mb = cache_mb
  source = SyntheticSource(config, "train")
  first = source[2]
  fresh = {k: v.copy() for k, v in first.items()}
  first["gt"][:] = -1.0
  again = source[2]
  for key in fresh:
    np.testing.assert_array_equal(again[key], fresh[key], err_msg=key)
  assert (2 in source._cache) == bool(cache_mb)
