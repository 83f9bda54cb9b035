"""Sensor presets of the synthetic source: bands, bit depth, MTF, the
range real scenes occupy, and the config fields a preset fixes."""

import numpy as np
import pytest

from configs import default
from pansharp_jax import errors
from pansharp_jax.data import presets, spectra, wald
from pansharp_jax.data.synthetic import SyntheticSource


def preset_config(name):
  config = default.get_config().data
  for key, value in presets.preset_overrides(name).items():
    field = key.removeprefix("data.")
    target = config.synthetic if field.startswith("synthetic.") else config
    target[field.removeprefix("synthetic.")] = value
  config.synthetic.scene_size = 32
  config.synthetic.num_train = 4
  return config


def samples(name, count=4):
  source = SyntheticSource(preset_config(name), "train")
  return source, [source[i] for i in range(count)]


# (bands, ratio, full scale, median of GT at most, 99th percentile range)
EXPECTED = {
    "ikonos": (4, 4, 2047, 0.12, (0.12, 0.4)),
    "quickbird": (4, 4, 2047, 0.12, (0.12, 0.4)),
    "wv2": (8, 4, 2047, 0.12, (0.12, 0.4)),
    "wv3": (8, 4, 2047, 0.12, (0.12, 0.4)),
    "geoeye1": (4, 4, 255, 0.4, (0.5, 1.0)),
    "landsat8": (4, 2, 65535, 0.4, (0.3, 0.7)),
}


def test_every_preset_is_covered():
  assert set(EXPECTED) == set(presets.PRESETS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bands_ratio_bit_depth_and_range(name):
  bands, ratio, full_scale, median, (low99, high99) = EXPECTED[name]
  source, drawn = samples(name)
  assert source.max_value == full_scale
  sample = drawn[0]
  assert sample["gt"].shape == (32, 32, bands)
  assert sample["ms"].shape == (32 // ratio, 32 // ratio, bands)
  assert sample["pan"].shape == (32, 32, 1)
  for key in ("gt", "ms", "pan"):
    dn = sample[key] * full_scale  # whole DN of the product's bit depth
    np.testing.assert_allclose(dn, np.round(dn), atol=1e-3 * full_scale / 2047,
                               err_msg=key)
  gt = np.stack([s["gt"] for s in drawn])
  # The part of the range real scenes of this product occupy.
  assert np.median(gt) <= median
  assert low99 <= np.percentile(gt, 99) <= high99
  assert gt.min() > 0.0


@pytest.mark.parametrize("name", ["ikonos", "wv2", "landsat8"])
def test_wald_protocol_with_the_preset_mtf(name):
  config = preset_config(name)
  _, (sample,) = samples(name, 1)
  kernels = wald.mtf_kernels(config.sensor, config.num_bands, config.ratio)
  expected = wald.decimate(wald.mtf_filter(sample["gt"], kernels), config.ratio)
  np.testing.assert_allclose(sample["ms"], expected, atol=1.5 / config.max_value)


def test_band_responses_peak_inside_the_published_edges():
  preset = presets.PRESETS["wv2"]
  responses = spectra.band_responses(8, preset.band_edges)
  peaks = spectra.WAVELENGTHS[responses.argmax(1)]
  for peak, (low, high) in zip(peaks, preset.band_edges):
    assert low <= peak <= min(high, 1000)
  # Landsat's PAN (503-676 nm) is blind to its NIR band (851-879 nm).
  landsat = presets.PRESETS["landsat8"]
  pan = spectra.pan_response(4, landsat.pan_edges)
  nir = spectra.band_responses(4, landsat.band_edges)[3]
  assert (pan * nir).sum() < 1e-3 * (pan * pan).sum()


def test_presets_differ_in_spectra_and_range():
  _, (ikonos,) = samples("ikonos", 1)
  _, (geoeye,) = samples("geoeye1", 1)
  # Same seed and layout; the 8-bit product is stretched several times
  # brighter than the 11-bit one.
  assert geoeye["gt"].mean() > 2.5 * ikonos["gt"].mean()


def test_a_preset_checks_the_fields_it_fixes():
  config = preset_config("wv2")
  config.num_bands = 4
  with pytest.raises(errors.ConfigError, match=r"config.data.num_bands: preset 'wv2' needs 8"):
    SyntheticSource(config, "train")
  config = preset_config("landsat8")
  config.max_value = 2047.0
  with pytest.raises(errors.ConfigError, match="config.data.max_value"):
    SyntheticSource(config, "train")
  config.synthetic.preset = "spot6"
  with pytest.raises(errors.ConfigError, match="config.data.synthetic.preset: unknown"):
    SyntheticSource(config, "train")
