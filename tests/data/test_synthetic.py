"""The synthetic source: shapes, ranges, determinism and spectral/spatial structure."""

import numpy as np
import pytest

from configs import default
from pansharp_jax.data.synthetic import SyntheticSource, pan_response


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
    # Values are whole sensor units (DN), as real data.
    dn = value * data_config.max_value
    np.testing.assert_allclose(dn, np.round(dn), atol=1e-3)


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
  # PAN is close to the spectral-response mix of the GT bands.
  sample = SyntheticSource(data_config, "train")[0]
  mixed = sample["gt"] @ pan_response(4)
  assert np.corrcoef(mixed.ravel(), sample["pan"].ravel())[0, 1] > 0.8


def test_ms_is_degraded_gt(data_config):
  sample = SyntheticSource(data_config, "train")[0]
  # The LR MS resembles the decimated GT but has lost detail.
  decimated = sample["gt"][2::4, 2::4]
  assert np.abs(sample["ms"] - decimated).mean() < 0.05
  assert sample["lms"].std() < sample["gt"].std()
