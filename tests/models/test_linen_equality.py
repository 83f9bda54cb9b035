"""The NNX networks compute what the Linen ones did (issue 33).

`fixtures/linen_reference.npz` holds parameters, outputs, losses and
gradients written by the Linen modules (linen_fixture.py); here the Linen
parameters go through `linen_paths.linen_to_nnx` into the NNX networks, which
must give the same eval outputs, train-mode outputs, loss terms, world state
and gradients (per leaf: L2 norm and sum; whole leaves for some).
"""

import jax
import jaxlib
import numpy as np
import pytest
from flax import nnx

from pansharp_jax.models import linen_paths, registry
from pansharp_jax.models.world import WorldState
import linen_fixture as lf
import model_helpers as h

# The fixture was written on jaxlib 0.12.0.1: there the NNX programs match
# the Linen ones to 1e-6. Another XLA release rounds some values of the same
# program differently (jaxlib 0.10.2, CI's oldest leg: up to 2.7e-6 in
# tiny_none's output; jaxlib 0.12.1, the newest leg's: up to 2.4e-5 in
# small_full's), so other releases get 1e-4, four times the largest seen.
FIXTURE_JAXLIB = "0.12.0.1"
TOLERANCE = 1e-6 if jaxlib.__version__ == FIXTURE_JAXLIB else 1e-4
CASES = tuple(lf.CASES)


@pytest.fixture(scope="module")
def reference():
  return lf.load()


def _network(case):
  model = registry.build_model(h.model_config(**lf.CASES[case][0]), lf.BANDS)
  return model, nnx.eval_shape(lambda: model.build(lf.RATIO, nnx.Rngs(0)))


def _variables(network, ref):
  variables = {"params": linen_paths.linen_to_nnx(ref["params"], network)}
  if ref.get("state"):
    variables["world_state"] = linen_paths.linen_to_nnx(
        lf.unflatten(ref["state"])["world_state"], network, WorldState)
  return variables


def _case(case, ref):
  """(model, abstract network, inputs, converted params, world state)."""
  model, network = _network(case)
  variables = _variables(network, ref)
  state = {k: v for k, v in variables.items() if k != "params"}
  return model, network, lf.inputs(), variables["params"], state


def _close(got, expected, what):
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected),
                             rtol=TOLERANCE, atol=TOLERANCE, err_msg=what)


@pytest.mark.parametrize("case", CASES)
def test_eval_outputs_equal_linen(case, reference):
  ref = reference[case]
  model, network, batch, params, state = _case(case, ref)
  # As the fixture's writer ran: inputs and world state are constants of
  # the program (XLA folds constants, which can round differently).
  outputs = jax.jit(lambda p: model.apply(
      {"params": p, **state}, batch["ms"], batch["pan"], batch["lms"]))(params)
  assert len(outputs) == len(ref["out"])
  for i, out in enumerate(outputs):
    _close(out, ref["out"][str(i)], f"{case} output {i}")


def _linen_stats(ref, field, network):
  """A per-leaf statistic stored under Linen paths, as an NNX tree."""
  return linen_paths.linen_to_nnx(lf.unflatten(ref[field]), network)


@pytest.mark.parametrize("case", [c for c in CASES if lf.CASES[c][1]])
def test_train_step_loss_and_gradients_equal_linen(case, reference):
  ref = reference[case]
  model, network, batch, params, state = _case(case, ref)

  def loss_fn(params):
    outputs, state_out = model.apply(
        {"params": params, **state}, batch["ms"], batch["pan"],
        batch["lms"], train=True, mutable=True,
        rngs={"gumbel": jax.random.PRNGKey(1), "dropout": jax.random.PRNGKey(2)})
    total, terms = lf.loss(outputs, batch, model.world)
    return total, (terms, outputs, state_out)

  scanned = lf.CASES[case][0].get("scan_layers", False)
  with lf.fixed_gumbel(**(dict(stride=2, offset=1) if scanned else {})):
    (total, (terms, outputs, new_state)), grads = jax.jit(
        jax.value_and_grad(loss_fn, has_aux=True))(params)
  _close(total, ref["loss"]["total"], "loss")
  assert set(terms) == set(ref["loss"]) - {"total"}
  for name, value in terms.items():
    _close(value, ref["loss"][name], f"loss term {name}")
  for i, out in enumerate(outputs):
    _close(out, ref["train_out"][str(i)], f"train output {i}")
  if ref.get("new_state"):
    expected = linen_paths.linen_to_nnx(
        lf.unflatten(ref["new_state"])["world_state"], network, WorldState)
    jax.tree.map(lambda g, e: _close(g, e, "world state"),
                 new_state["world_state"], expected)

  # In float64, as the fixture's writer summed.
  wide = jax.tree.map(lambda g: np.asarray(g, np.float64), grads)
  norms = jax.tree.map(lambda g: np.sqrt(np.sum(g * g)), wide)
  sums = jax.tree.map(np.sum, wide)
  # Leaf by leaf (tree.map insists on the same structure on both sides).
  jax.tree.map(lambda g, e: _close(g, e, "gradient norm"), norms,
               _linen_stats(ref, "gradnorm", network))
  jax.tree.map(lambda g, e: _close(g, e, "gradient sum"), sums,
               _linen_stats(ref, "gradsum", network))
  # Whole leaves: the pansharpener's full-resolution head and S6 A_log.
  whole = lf.unflatten(ref.get("grad", {}))
  assert bool(whole) == case.startswith(("tiny", "small"))
  flat_grads = lf.flatten(grads)
  nnx_path = {linen: path for path, linen in
              linen_paths.linen_paths(network).items()}
  for path, expected in lf.flatten(whole).items():
    got = flat_grads[lf.SEP.join(nnx_path[tuple(path.split(lf.SEP))])]
    _close(got, expected, f"gradient {path}")
