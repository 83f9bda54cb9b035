"""model.full_refine: residual conv blocks on the full-resolution features
before the full head. Their shapes, the untrained identity (the full head
starts at zero), gradients to every parameter, and that 0 builds none."""

import jax
import numpy as np
import pytest
import model_helpers as h
from model_helpers import HEIGHT, WIDTH

from pansharp_jax.models.layers import avg_pool2

_DEFAULTS = dict(head="residual", input_norm="sample",
                 detail_input="pan_minus_ms", dim=24)


@pytest.fixture(scope="module")
def refined():
  model = h.build(4, full_refine=2, **_DEFAULTS)
  inputs = h.inputs(seed=4, height=HEIGHT, width=WIDTH)
  params = jax.jit(model.init)(h.key(0), *inputs[:2])["params"]
  return model, params, inputs


def test_blocks_work_on_the_full_heads_input(refined):
  _, params, _ = refined
  decoder = params["decoder"]
  assert sorted(k for k in decoder if k.startswith("refine_")) == [
      "refine_0", "refine_1"]
  for name in ("refine_0", "refine_1"):  # 2 dim: what head_full reads
    assert decoder[name]["conv_in"]["kernel"].shape == (3, 3, 48, 48)
    assert decoder[name]["conv_out"]["kernel"].shape == (3, 3, 48, 48)
  assert params["head_full"]["conv"]["kernel"].shape == (3, 3, 48, 4)


def test_the_full_output_reads_the_blocks(refined):
  """With woken heads, changing a block's weights moves the full output
  only (the blocks come after the 1/2 and 1/4 features)."""
  model, params, (ms, pan, lms) = refined
  woken = h.wake_heads(params)
  before = model.apply({"params": woken}, ms, pan, lms)
  decoder = dict(woken["decoder"])
  block = decoder["refine_1"]
  decoder["refine_1"] = {**block, "conv_out": {
      **block["conv_out"], "bias": block["conv_out"]["bias"] + 0.1}}
  after = model.apply({"params": {**woken, "decoder": decoder}}, ms, pan, lms)
  np.testing.assert_array_equal(before[0], after[0])
  np.testing.assert_array_equal(before[1], after[1])
  assert np.abs(np.asarray(before[2]) - np.asarray(after[2])).max() > 1e-4


def test_untrained_output_is_the_interpolated_ms(refined):
  model, params, (ms, pan, lms) = refined
  sr_1_4, sr_1_2, full = model.apply({"params": params}, ms, pan, lms)
  assert (sr_1_4.shape, sr_1_2.shape) == ((2, HEIGHT // 4, WIDTH // 4, 4),
                                          (2, HEIGHT // 2, WIDTH // 2, 4))
  np.testing.assert_array_equal(full, lms)
  np.testing.assert_allclose(sr_1_2, avg_pool2(lms), atol=1e-7)


def test_gradients_reach_every_parameter(refined):
  model, params, inputs = refined
  dead = h.dead_parameters(model, params, *inputs)
  assert not dead, dead


def test_zero_builds_no_blocks():
  ms, pan, _ = h.inputs(height=16)
  shapes = jax.eval_shape(h.build(4, full_refine=0, **_DEFAULTS).init,
                          h.key(0), ms, pan)
  assert not [k for k in shapes["params"]["decoder"] if k.startswith("refine")]
