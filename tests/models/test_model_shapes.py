"""Output shapes for every size and band count; the untrained identity; the
docs on which sizes pool their attention."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
import model_helpers as h
from model_helpers import HEIGHT, WIDTH

from pansharp_jax.models import sizes


@pytest.mark.parametrize("bands", [3, 4, 8])
@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
def test_output_shapes(size, bands):
  # nnx.scan traces each layer's blocks once: base and large trace in seconds.
  model = h.build(bands, size, scan_layers=size in ("base", "large"))
  height, width = 36, 44    # multiples of 4, not of 8
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  ms, pan = spec(2, height // 4, width // 4, bands), spec(2, height, width, 1)
  lms = spec(2, height, width, bands)

  def run(ms, pan, lms):
    variables = model.init(h.key(0), ms, pan)
    return model.apply(variables, ms, pan), model.apply(variables, ms, pan, lms)

  for outputs in jax.eval_shape(run, ms, pan, lms):
    assert [o.shape for o in outputs] == [
        (2, 9, 11, bands), (2, 18, 22, bands), (2, height, width, bands)]
    assert all(o.dtype == jnp.float32 for o in outputs)


def test_bad_input_shapes_raise():
  model = h.build(4)
  ms, pan, _ = h.inputs(height=16, width=16)
  variables = jax.eval_shape(model.init, h.key(0), ms, pan)
  with pytest.raises(ValueError, match="multiples of 4"):
    jax.eval_shape(model.apply, variables, ms[:, :3, :3], pan[:, :14, :14])
  with pytest.raises(ValueError, match="ms must be"):
    jax.eval_shape(model.apply, variables, ms[..., :3], pan)


def test_real_outputs_finite_and_sigmoid_heads_in_range(tiny, tiny_outputs):
  for out, scale in zip(tiny_outputs, (4, 2, 1)):
    out = np.asarray(out)
    assert out.shape == (2, HEIGHT // scale, WIDTH // scale, 4)
    assert np.all(np.isfinite(out))
  # The SPEC's sigmoid heads keep every output inside [0, 1] by construction.
  sigmoid = h.build(4, head="sigmoid", input_norm="none")
  for out in sigmoid.apply({"params": tiny.params}, tiny.ms, tiny.pan, tiny.lms):
    assert np.asarray(out).min() >= 0 and np.asarray(out).max() <= 1


def test_untrained_model_outputs_the_interpolated_ms(tiny):
  # The heads start at zero: each output is the MS interpolated to its scale.
  sr_1_4, sr_1_2, full = tiny.forward(tiny.init_params, tiny.ms, tiny.pan,
                                      tiny.lms)
  np.testing.assert_allclose(sr_1_4, tiny.ms, atol=1e-5)
  np.testing.assert_allclose(full, tiny.lms, atol=1e-5)
  np.testing.assert_allclose(
      sr_1_2, nnx.avg_pool(tiny.lms, (2, 2), (2, 2)), atol=1e-5)


@pytest.mark.parametrize("ratio", [2, 8])
def test_other_ratios_keep_the_three_scales(tiny, ratio):
  """MS at 1/2 or 1/8 of the PAN: outputs are still at 1/4, 1/2 and full PAN
  resolution, and the untrained model still gives the interpolated MS (the
  1/4 head starts from the pooled lms, as the MS is not at 1/4)."""
  _, pan, lms = h.inputs(seed=3, height=32)
  ms = nnx.avg_pool(lms, (ratio, ratio), (ratio, ratio))
  sr_1_4, sr_1_2, full = tiny.forward(tiny.init_params, ms, pan, lms)
  quarter = nnx.avg_pool(lms, (4, 4), (4, 4))
  np.testing.assert_allclose(sr_1_4, quarter, atol=1e-5)
  np.testing.assert_allclose(sr_1_2, nnx.avg_pool(lms, (2, 2), (2, 2)), atol=1e-5)
  np.testing.assert_allclose(full, lms, atol=1e-5)
  with pytest.raises(ValueError, match="ratio r in"):
    tiny.forward(tiny.init_params, ms[:, :3], pan, lms)


def test_docs_say_which_sizes_pool_their_attention():
  """README and docs/models.md name the sizes whose cross attention is not
  over every pixel, with their pooling, as models/sizes.py sets them."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  # Whitespace-normalised: sentences wrap across lines.
  read = lambda *path: " ".join(open(os.path.join(root, *path)).read().split())
  models_md, readme = read("docs", "models.md"), read("README.md")
  exact = [n for n, s in sizes.SIZES.items() if set(s.attn_pool) == {1}]
  pooled = {n: s.attn_pool for n, s in sizes.SIZES.items() if n not in exact}
  assert exact == ["base", "large"] and set(pooled) == {"tiny", "small"}
  assert "exact over every pixel at the base and large sizes" in readme
  assert "Cross attention is exact over every pixel only at base and large" in (
      models_md)
  for name, pools in pooled.items():
    assert f"{name} pools {', '.join(f'{p}x{p}' for p in pools)}" in models_md
