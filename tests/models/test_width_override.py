"""model.dim: the feature width of a size, overridden; every layer follows
it, the untrained output is still the interpolated MS and every parameter
gets a gradient."""

import jax
import numpy as np
import pytest
import model_helpers as h
from model_helpers import HEIGHT, WIDTH


@pytest.fixture(scope="module")
def wide():
  model = h.build(4, head="residual", input_norm="sample",
                  detail_input="pan_minus_ms", dim=24)
  inputs = h.inputs(seed=3, height=HEIGHT, width=WIDTH)
  params = jax.jit(model.init)(h.key(0), *inputs[:2])["params"]
  return model, params, inputs


def test_every_width_follows_dim(wide):
  _, params, _ = wide
  decoder = params["decoder"]
  assert decoder["ms_first"]["kernel"].shape == (3, 3, 8, 24)
  assert decoder["pan_first"]["kernel"].shape == (3, 3, 5, 24)
  assert decoder["fusion_half"]["out"]["kernel"].shape == (48, 48)
  assert decoder["fusion_quarter"]["out"]["kernel"].shape == (96, 96)
  # the heads read (1/4: 4 dim; 1/2: 2 dim + 2 dim; full: dim + dim)
  assert params["head_quarter"]["conv"]["kernel"].shape == (3, 3, 96, 4)
  assert params["head_half"]["conv"]["kernel"].shape == (3, 3, 96, 4)
  assert params["head_full"]["conv"]["kernel"].shape == (3, 3, 48, 4)


def test_zero_keeps_the_size_width():
  ms, pan, _ = h.inputs(height=16)
  shapes = jax.eval_shape(h.build(4, dim=0).init, h.key(0), ms, pan)
  assert shapes["params"]["decoder"]["ms_first"]["kernel"].shape[-1] == 16


def test_untrained_output_is_the_interpolated_ms(wide):
  model, params, (ms, pan, lms) = wide
  sr_1_4, sr_1_2, full = model.apply({"params": params}, ms, pan, lms)
  assert (sr_1_4.shape, sr_1_2.shape) == ((2, HEIGHT // 4, WIDTH // 4, 4),
                                          (2, HEIGHT // 2, WIDTH // 2, 4))
  np.testing.assert_array_equal(full, lms)


def test_gradients_reach_every_parameter(wide):
  model, params, inputs = wide
  dead = h.dead_parameters(model, params, *inputs)
  assert not dead, dead
