"""Model tests: shared tiny model, params and compiled forward passes.

Compiling the model dominates these tests on a CPU, so the compiled
functions are built once per session and reused by every test file.
"""

import types

import jax
import pytest
import model_helpers as h
from model_helpers import HEIGHT, WIDTH


@pytest.fixture(scope="session")
def tiny():
  """Tiny 4-band model (world preset none), params with awake heads, inputs
  and its jitted eval forward pass."""
  model = h.build(4)
  ms, pan, lms = h.inputs(height=HEIGHT, width=WIDTH)
  variables = jax.jit(model.init)(h.key(0), ms, pan)
  params = h.wake_heads(variables["params"])
  forward = jax.jit(lambda p, ms, pan, lms: model.apply({"params": p}, ms, pan, lms))
  return types.SimpleNamespace(model=model, init_params=variables["params"],
                               params=params, ms=ms, pan=pan, lms=lms,
                               forward=forward)


@pytest.fixture(scope="session")
def tiny_outputs(tiny):
  """The eval outputs of `tiny` (with lms, as in training)."""
  return tiny.forward(tiny.params, tiny.ms, tiny.pan, tiny.lms)
