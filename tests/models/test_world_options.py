"""World options (SPEC §2.5): each changes the output or the loss; WSM state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
import model_helpers as h

from pansharp_jax import losses
from pansharp_jax.models import functional, world
from pansharp_jax.models.cross_attention import CrossModalAttention


def test_presets_resolve():
  resolved = lambda preset: world.world_options(
      h.model_config(world_preset=preset).world)
  assert resolved("none") == world.WorldOptions()
  assert resolved("core").wsm and resolved("core").dsc
  assert not resolved("core").dca
  full = resolved("full")
  assert full.wsm and full.dca and full.dsc and full.wacx
  assert not full.patch_prior
  with pytest.raises(ValueError, match="preset"):
    resolved("all")


def _features(seed, shape=(2, 8, 8, 16)):
  return jax.random.uniform(h.key(seed), shape)


def _wsm(**options):
  """(graphdef, {'params', 'world_state'}) of a WSM over 16 channels."""
  return functional.split(world.WorldStateMemory(16, 8, rngs=nnx.Rngs(h.key(1)),
                                                 **options))


def _wsm_call(graphdef, variables, x, train=True):
  """The WSM's output and its world state after the call."""
  wsm = nnx.merge(graphdef, *(nnx.State(variables[name])
                              for name in ("params", "world_state")))
  return wsm(x, train=train), functional.split(wsm)[1]["world_state"]


def test_wsm_modulates_and_carries_its_state():
  graphdef, variables = _wsm()
  x = _features(0)
  assert int(variables["world_state"]["count"]) == 0
  y, state = _wsm_call(graphdef, variables, x)
  assert h.max_abs_diff(y, x) > 1e-4           # FiLM changes the features
  assert int(state["count"]) == 1
  assert np.abs(np.asarray(state["hidden"])).sum() > 0
  # The carried state changes the next output.
  carried = {**variables, "world_state": state}
  y_next, _ = _wsm_call(graphdef, carried, x)
  assert h.max_abs_diff(y_next, y) > 0
  # Eval leaves the state alone.
  _, frozen = _wsm_call(graphdef, carried, x, train=False)
  h.assert_trees_equal(frozen, state)


@pytest.mark.parametrize("reset_every, resets", [(0, False), (2, False),
                                                 (1, True)])
def test_wsm_reset_every(reset_every, resets):
  graphdef, variables = _wsm(reset_every=reset_every)
  x = _features(2)
  fresh, after_one = _wsm_call(graphdef, variables, x)
  # Second step (count 1): from the carried state unless it is reset.
  second, after_two = _wsm_call(graphdef, {**variables, "world_state": after_one}, x)
  assert (h.max_abs_diff(second, fresh) == 0) == resets
  if reset_every == 2:
    # The third step (count 2) starts from zero again.
    third, _ = _wsm_call(graphdef, {**variables, "world_state": after_two}, x)
    np.testing.assert_array_equal(third, fresh)


def test_dca_changes_the_cross_attention():
  ms, pan = _features(4), _features(5)
  attention = CrossModalAttention(16, 2, dca_points=4, rngs=nnx.Rngs(h.key(6)))
  aligned = attention(ms, pan)
  attention.dca_fim = None  # the same weights without DCA-FIM
  assert h.max_abs_diff(attention(ms, pan), aligned) > 1e-4


def test_patch_prior_refines_eval_output_only(tiny, tiny_outputs):
  model = h.build(4, world_patch_prior=True)
  refined = jax.jit(lambda p: model.apply(
      {"params": p}, tiny.ms, tiny.pan, tiny.lms))(tiny.params)
  expected = world.patch_prior_refine(tiny_outputs[-1], tiny.lms)
  np.testing.assert_allclose(refined[-1], expected, atol=1e-6)
  assert h.max_abs_diff(refined[-1], tiny_outputs[-1]) > 1e-4
  # Two compiled programs: equal up to float rounding (outputs of order 1,
  # unclipped with the residual heads).
  assert h.max_abs_diff(refined[:2], tiny_outputs[:2]) < 2e-5


@pytest.mark.parametrize("option", ["dsc", "wacx"])
def test_loss_options_add_their_term(tiny, tiny_outputs, option):
  gt = jnp.clip(tiny.lms + 0.05 * _features(7, tiny.lms.shape), 0, 1)
  batch = {"gt": gt, "ms": tiny.ms, "pan": tiny.pan, "lms": tiny.lms}
  config = h.common.get_base_config()
  base_total, base_terms = losses.compute_losses(
      tiny_outputs, batch, config.loss, world=world.WorldOptions())
  total, terms = losses.compute_losses(
      tiny_outputs, batch, config.loss, world=world.WorldOptions(**{option: True}))
  assert option not in base_terms and float(terms[option]) > 0
  np.testing.assert_allclose(
      total, base_total + config.loss[option] * terms[option], rtol=1e-6)
