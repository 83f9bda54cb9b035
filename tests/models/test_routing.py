"""Semantic routing: sort/unsort, hard Gumbel routes, straight-through grads,
and SemanticScan (sort -> scan -> unsort, prompts in C) against a NumPy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
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


def _block():
  size = LayerSize(d_state=4, num_tokens=4, inner_rank=4, mlp_ratio=1.0)
  return nnx.split(assm.DualModalASSM(8, size, rngs=nnx.Rngs(8)), nnx.Param)


def test_routing_mlp_gets_gradients_in_training():
  ms, pan = (jax.random.normal(k, (2, 8, 8, 8))
             for k in jax.random.split(h.key(7)))
  graphdef, params = _block()

  def route_grads(train, gumbel):
    def loss(p):
      out_ms, out_pan = nnx.merge(graphdef, p)(
          ms, pan, train=train, rngs=nnx.Rngs(gumbel=gumbel))
      return jnp.sum(out_ms ** 2) + jnp.sum(out_pan ** 2)
    grads = nnx.to_pure_dict(jax.jit(jax.grad(loss))(params))
    return [np.abs(np.asarray(g)).sum() for name in ("route_hidden", "route_out")
            for g in jax.tree.leaves(grads[name])]

  # Straight-through: the hard routes pass the soft sample's gradient on
  # (at eval the routes are an argmax, with no gradient: see above).
  assert all(g > 0 for g in route_grads(True, h.key(9)))


# ---- SemanticScan: the sort -> scan -> unsort path --------------------------

def _scan_case(seed, directions, height=4, width=5, channels=4, d_state=3,
               num_routes=3):
  """A SemanticScan, its params and inputs: x (M=2, B=2, H, W, D), prompt
  (2, 2, H, W, d_state) and a route map (2, H, W) using every route."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, 2, height, width, channels)).astype(np.float32)
  prompt = rng.standard_normal((2, 2, height, width, d_state)).astype(np.float32)
  route = rng.permutation(np.arange(2 * height * width) % num_routes)
  route = route.reshape(2, height, width).astype(np.int32)
  module = assm.SemanticScan(channels, d_state, directions, method="sequential",
                             rngs=nnx.Rngs(seed))
  params = nnx.to_pure_dict(nnx.state(module, nnx.Param))
  return module, params, x, prompt, route


def _grid_orders(height, width, directions):
  """Per scan direction, the (row, col) grid positions in scan order."""
  rows = [(i, j) for i in range(height) for j in range(width)]
  cols = [(i, j) for j in range(width) for i in range(height)]
  return [rows, cols, rows[::-1], cols[::-1]][:directions]


def _semantic_order(order, route_of):
  """Tokens of a forward order grouped by ascending route, scan order kept
  within a group (Python's sort is stable)."""
  return sorted(order, key=route_of)


def _flatten(tree, prefix=""):
  """{'a/b': leaf} from a nested dict of params."""
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name + "/"))
    else:
      flat[name] = value
  return flat

def _numpy_semantic_scan(params, x, prompt, route, directions):
  """SemanticScan written out: per direction and sequence, the S6 recurrence
  over the semantically ordered tokens in float64, summed back on the grid.

  A reversed direction is the exact reverse of its forward direction's
  semantic order: groups in descending route order, each group reversed.
  """
  p = {k: np.asarray(v, np.float64) for k, v in _flatten(params).items()}
  w_x, w_dt = p["x_proj/kernel"], p["dt_proj/kernel"]
  a = -np.exp(p["A_log"])
  rank, d_state = w_dt.shape[0], a.shape[1]
  modalities, batch, height, width, _ = x.shape
  out = np.zeros(x.shape)
  forward = _grid_orders(height, width, min(directions, 2))
  for m in range(modalities):
    for b in range(batch):
      route_of = lambda pos: route[b][pos]
      orders = [_semantic_order(o, route_of) for o in forward]
      if directions == 4:
        orders += [o[::-1] for o in orders]
      for order in orders:
        state = np.zeros_like(a)
        for pos in order:
          u = x[m, b][pos].astype(np.float64)
          proj = u @ w_x
          delta = np.logaddexp(0, proj[:rank] @ w_dt + p["dt_bias"])
          b_t = proj[rank:rank + d_state]
          c_t = proj[rank + d_state:] + prompt[m, b][pos]
          state = np.exp(delta[:, None] * a) * state + (delta * u)[:, None] * b_t
          out[m, b][pos] += state @ c_t + p["D"] * u
  return out



@pytest.mark.parametrize("directions", [1, 2, 4])
def test_semantic_scan_matches_a_numpy_loop(directions):
  module, params, x, prompt, route = _scan_case(directions, directions)
  got = module(x, prompt, route)
  want = _numpy_semantic_scan(params, x, prompt, route, directions)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("directions", [2, 4])
def test_reversed_directions_carry_later_groups_into_earlier_ones(directions):
  """Forward orders scan the route groups in ascending order, so the last
  group cannot reach the first; the reversed orders (directions=4) run the
  groups backwards, so it must."""
  module, params, x, prompt, route = _scan_case(7, directions)
  last = route == route.max()
  changed = x.copy()
  changed[:, last] += 1.0
  scan = lambda x: np.asarray(module(x, prompt, route))
  first = route == route.min()
  moved = np.abs(scan(changed) - scan(x))[:, first].max()
  if directions == 4:
    assert moved > 1e-3
  else:
    assert moved == 0
