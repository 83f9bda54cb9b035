"""Semantic routing: sort/unsort, hard Gumbel routes, straight-through grads."""

import jax
import jax.numpy as jnp
import numpy as np
import model_helpers as h

from pansharp_jax.models import assm
from pansharp_jax.models.sizes import LayerSize


def test_sort_unsort_round_trip_is_exact():
  keys = jax.random.randint(h.key(1), (4, 2, 3, 50), 0, 7)
  x = jax.random.normal(h.key(2), (4, 2, 3, 50, 5))
  perm, inverse = assm.semantic_permutation(keys)
  grouped = assm.gather_tokens(x, perm)
  np.testing.assert_array_equal(assm.gather_tokens(grouped, inverse), x)
  # Grouped by key, and stable: scan order kept within a group.
  sorted_keys = np.asarray(jnp.take_along_axis(keys, perm, axis=-1))
  assert np.all(np.diff(sorted_keys, axis=-1) >= 0)
  perm = np.asarray(perm)
  same_key = np.diff(sorted_keys, axis=-1) == 0
  assert np.all(np.diff(perm, axis=-1)[same_key] > 0)


def test_route_policy_hard_forward_straight_through_backward():
  logits = jax.random.normal(h.key(3), (6, 5, 8))
  weights = jax.random.normal(h.key(4), (8,))
  loss = lambda l, rng: jnp.sum(assm.route_policy(l, rng) * weights)

  policy = np.asarray(assm.route_policy(logits, h.key(5)))
  np.testing.assert_array_equal(np.sort(policy, -1)[..., :-1], 0)
  np.testing.assert_array_equal(policy.max(-1), 1)
  assert np.abs(np.asarray(jax.grad(loss)(logits, h.key(5)))).sum() > 0
  # A different draw gives different routes.
  assert np.any(np.asarray(assm.route_policy(logits, h.key(6))) != policy)

  # Without an rng: argmax, no gradient.
  np.testing.assert_array_equal(
      assm.route_policy(logits), jax.nn.one_hot(jnp.argmax(logits, -1), 8))
  np.testing.assert_array_equal(
      jax.grad(lambda l: loss(l, None))(logits), np.zeros(logits.shape))


def _block(train):
  return assm.DualModalASSM(size=LayerSize(d_state=4, num_tokens=4, inner_rank=4,
                                           mlp_ratio=1.0), train=train)


def test_routing_mlp_gets_gradients_in_training():
  ms, pan = (jax.random.normal(k, (2, 8, 8, 8))
             for k in jax.random.split(h.key(7)))
  params = jax.jit(_block(False).init)(h.key(8), (ms, pan))["params"]

  def route_grads(train, gumbel):
    def loss(p):
      (out_ms, out_pan), _ = _block(train).apply(
          {"params": p}, (ms, pan), rngs={"gumbel": gumbel})
      return jnp.sum(out_ms ** 2) + jnp.sum(out_pan ** 2)
    grads = jax.jit(jax.grad(loss))(params)
    return [np.abs(np.asarray(g)).sum() for name in ("route_hidden", "route_out")
            for g in jax.tree.leaves(grads[name])]

  # Straight-through: the hard routes pass the soft sample's gradient on
  # (at eval the routes are an argmax, with no gradient: see above).
  assert all(g > 0 for g in route_grads(True, h.key(9)))
