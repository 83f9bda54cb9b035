"""The output heads (model.head) and input normalisation (model.input_norm):
numerics against a plain convolution, the untrained identity, scale
equivariance, and gradients that reach every parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
import model_helpers as h
from model_helpers import HEIGHT, WIDTH

from pansharp_jax.models.pansharpener import Head


def _conv3x3(x, kernel, bias):
  """'SAME' 3x3 correlation written out with numpy (NHWC, HWIO)."""
  x = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  height, width = x.shape[1] - 2, x.shape[2] - 2
  out = sum(np.einsum("bhwi,io->bhwo", x[:, i:i + height, j:j + width],
                      np.asarray(kernel, np.float64)[i, j])
            for i in range(3) for j in range(3))
  return out + np.asarray(bias, np.float64)


@pytest.mark.parametrize("kind", ["sigmoid", "residual"])
def test_head_numerics(kind):
  features = jax.random.normal(h.key(1), (2, 8, 8, 6))
  base = jax.random.uniform(h.key(2), (2, 8, 8, 3), minval=0.02, maxval=0.3)
  head = Head(6, 3, kind, rngs=nnx.Rngs(0))
  # Zero kernel at the start: the output is the base.
  np.testing.assert_allclose(head(features, base), base, atol=1e-6)
  head.conv.kernel[...] = 0.1 * jax.random.normal(h.key(3),
                                                  head.conv.kernel.shape)
  delta = _conv3x3(features, head.conv.kernel[...], head.conv.bias[...])
  b = np.asarray(base, np.float64)
  expected = (b + 0.5 * delta if kind == "residual"
              else 1 / (1 + np.exp(-(delta + np.log(b / (1 - b))))))
  got = head(features, base, 0.5)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_residual_head_gradient_does_not_shrink_on_dark_pixels():
  """d output / d correction: 1 for the residual head, p (1 - p) for the
  sigmoid's (0.0475 at p = 0.05), the diagnosis of docs/recipes.md."""
  features = jnp.ones((1, 4, 4, 2))
  for kind, slope in (("residual", 1.0), ("sigmoid", 0.05 * 0.95)):
    graphdef, state = nnx.split(Head(2, 1, kind, rngs=nnx.Rngs(0)))
    params = nnx.to_pure_dict(state)

    def out(bias):
      p = {"conv": {**params["conv"], "bias": bias}}
      head = nnx.merge(graphdef, nnx.State(p))
      return head(features, jnp.full((1, 4, 4, 1), 0.05))[0, 1, 1, 0]

    np.testing.assert_allclose(jax.grad(out)(jnp.zeros(1)), [slope], rtol=2e-3)


@pytest.fixture(scope="module", params=["none", "sample", "band"])
def residual(request):
  model = h.build(4, head="residual", input_norm=request.param)
  ms, pan, lms = h.inputs(seed=4, height=HEIGHT, width=WIDTH)
  params = jax.jit(model.init)(h.key(0), ms, pan)["params"]
  forward = jax.jit(lambda p, ms, pan, lms: model.apply({"params": p}, ms, pan, lms))
  return model, params, forward, (ms, pan, lms)


def test_residual_untrained_model_is_exactly_the_interpolated_ms(residual):
  _, params, forward, (ms, pan, lms) = residual
  sr_1_4, sr_1_2, full = forward(params, ms, pan, lms)
  assert [o.shape for o in (sr_1_4, sr_1_2, full)] == [
      (2, HEIGHT // 4, WIDTH // 4, 4), (2, HEIGHT // 2, WIDTH // 2, 4),
      (2, HEIGHT, WIDTH, 4)]
  np.testing.assert_array_equal(sr_1_4, ms)
  np.testing.assert_array_equal(full, lms)
  np.testing.assert_allclose(sr_1_2, nnx.avg_pool(lms, (2, 2), (2, 2)), atol=1e-7)


def test_residual_gradients_reach_every_parameter(residual):
  model, params, _, inputs = residual
  dead = h.dead_parameters(model, params, *inputs)
  assert not dead, dead


@pytest.mark.parametrize("norm", ["sample", "band"])
def test_input_norm_makes_the_residual_model_scale_equivariant(norm):
  """With input_norm=sample or band, a scene k times as bright (a sensor
  using a smaller part of its range) gets k times the output: the network
  works at one scale whatever the radiometry."""
  model = h.build(4, head="residual", input_norm=norm)
  ms, pan, lms = h.inputs(seed=5, height=HEIGHT, width=WIDTH)
  params = h.wake_heads(jax.jit(model.init)(h.key(0), ms, pan)["params"])
  forward = jax.jit(lambda ms, pan, lms: model.apply({"params": params}, ms, pan, lms))
  bright = forward(ms, pan, lms)
  dark = forward(0.2 * ms, 0.3 * pan, 0.2 * lms)
  for b, d in zip(bright, dark):
    np.testing.assert_allclose(d, 0.2 * np.asarray(b), rtol=2e-4, atol=1e-6)
  # Without it the residual model is not: the correction keeps its size.
  plain = h.build(4, head="residual", input_norm="none")
  out = lambda *x: plain.apply({"params": params}, *x)[-1]
  assert np.abs(out(0.2 * ms, 0.3 * pan, 0.2 * lms) -
                0.2 * out(ms, pan, lms)).max() > 1e-3
