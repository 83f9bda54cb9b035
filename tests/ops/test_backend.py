"""ops/backend.py: the platform a trace is for, and the picks that follow it."""

import jax
import jax.numpy as jnp
import pytest

from pansharp_jax import ops
from pansharp_jax.ops import attention, backend


def test_tracing_for_overrides_and_restores():
  assert backend.target() == jax.default_backend()
  with backend.tracing_for("gpu"):
    assert backend.target() == "gpu"
    with backend.tracing_for("tpu"):
      assert backend.target() == "tpu"
    assert backend.target() == "gpu"
  assert backend.target() == jax.default_backend()
  with pytest.raises(ValueError, match="platform must be"):
    with backend.tracing_for("cuda"):
      pass


def test_auto_picks_follow_the_target():
  q = jnp.zeros((1, 16, 2, 8), jnp.bfloat16)
  x = jnp.ones((1, 8, 3))
  args = (x, x, -jnp.ones((3, 4)), jnp.ones((1, 8, 4)), jnp.ones((1, 8, 4)))
  with backend.tracing_for("gpu"):
    assert attention._cudnn_applies(q)
    # auto on a GPU is the chunked scan: a scan over chunks of associative
    # scans, where the sequential form is one scan of length 8.
    lengths = [e.params["length"] for e in jax.make_jaxpr(
        lambda *a: ops.selective_scan(*a, chunk_size=4))(*args).jaxpr.eqns
        if e.primitive.name == "scan"]
  assert lengths == [2]
  assert not attention._cudnn_applies(q)
