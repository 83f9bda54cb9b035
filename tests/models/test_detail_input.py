"""model.detail_input=pan_minus_ms: what the shallow convs read, the
untrained identity at ratios 4 and 2, and gradients to every parameter;
detail_input=none keeps SPEC's shallow convs."""

import jax
import numpy as np
import pytest
from flax import nnx
import model_helpers as h
from model_helpers import HEIGHT, WIDTH

from pansharp_jax.models.layers import avg_pool2


def _inputs(ratio):
  """ms at 1/ratio of pan (ratio 2: the pooled lms), pan and lms."""
  ms, pan, lms = h.inputs(seed=6, height=HEIGHT, width=WIDTH)
  if ratio == 2:
    ms = avg_pool2(lms)
  return ms, pan, lms


@pytest.fixture(scope="module", params=[4, 2])
def detail(request):
  model = h.build(4, head="residual", input_norm="sample",
                  detail_input="pan_minus_ms")
  ms, pan, lms = _inputs(request.param)
  params = jax.jit(model.init)(h.key(0), ms, pan)["params"]
  return model, params, (ms, pan, lms)


class _Recorded(nnx.Module):
  """`conv`, passing what it reads to `record` (eager calls)."""

  def __init__(self, conv, record):
    self.conv, self.record = conv, record

  def __call__(self, x):
    self.record(np.asarray(x))
    return self.conv(x)


def test_shallow_convs_read_the_normalised_pan_minus_lms(detail):
  model, params, (ms, pan, lms) = detail
  seen = {}
  network = model.bind({"params": params}, pan.shape[1] // ms.shape[1])
  for name in ("ms_first", "pan_first"):
    record = lambda x, name=name: seen.__setitem__(name, x)
    setattr(network.decoder, name,
            _Recorded(getattr(network.decoder, name), record))
  network(ms, pan, lms)
  lms_n = np.asarray(lms) / np.asarray(lms).mean(axis=(1, 2, 3), keepdims=True)
  pan_n = np.asarray(pan) / np.asarray(pan).mean(axis=(1, 2, 3), keepdims=True)
  expected_detail = pan_n - lms_n  # PAN replicated over the 4 bands
  np.testing.assert_allclose(
      seen["ms_first"], np.concatenate([lms_n, expected_detail], -1), rtol=1e-5,
      atol=1e-6)
  np.testing.assert_allclose(
      seen["pan_first"], np.concatenate([pan_n, expected_detail], -1), rtol=1e-5,
      atol=1e-6)
  assert params["decoder"]["ms_first"]["kernel"].shape == (3, 3, 8, 16)
  assert params["decoder"]["pan_first"]["kernel"].shape == (3, 3, 5, 16)


def test_untrained_output_is_the_interpolated_ms(detail):
  model, params, (ms, pan, lms) = detail
  sr_1_4, sr_1_2, full = model.apply({"params": params}, ms, pan, lms)
  assert full.shape == (2, HEIGHT, WIDTH, 4)
  assert sr_1_2.shape == (2, HEIGHT // 2, WIDTH // 2, 4)
  assert sr_1_4.shape == (2, HEIGHT // 4, WIDTH // 4, 4)
  np.testing.assert_array_equal(full, lms)
  np.testing.assert_allclose(sr_1_2, avg_pool2(lms), atol=1e-7)


def test_gradients_reach_every_parameter(detail):
  model, params, inputs = detail
  dead = h.dead_parameters(model, params, *inputs)
  assert not dead, dead


def test_none_keeps_the_spec_shallow_convs():
  """SPEC (configs/original_256.py): the MS conv reads the C bands alone,
  the PAN conv the PAN alone."""
  model = h.build(4, detail_input="none")
  ms, pan, _ = _inputs(4)
  decoder = jax.eval_shape(model.init, h.key(0), ms, pan)["params"]["decoder"]
  assert decoder["ms_first"]["kernel"].shape == (3, 3, 4, 16)
  assert decoder["pan_first"]["kernel"].shape == (3, 3, 1, 16)
