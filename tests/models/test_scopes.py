"""models/scopes.py: the compiled ops carry their module's path (the Linen
names), so `benchmarks.train_step --profile_dir` groups a profile by module
as it did with Linen's automatic scopes."""

import re

import jax
import jax.numpy as jnp

from benchmarks import common
import model_helpers as h


def _op_names(hlo_text):
  return [m.group(3) for m in map(common._HLO_LINE.match, hlo_text.splitlines())
          if m]


def test_profile_groups_a_train_step_by_module():
  """PanNet's gradient, compiled: forward and backward ops of each residual
  block group under its Linen path."""
  model = h.build(name="pannet")
  ms, pan, lms = h.inputs(height=16)
  params = model.init(h.key(), ms, pan, lms)["params"]
  loss = lambda p: jnp.mean(model.apply({"params": p}, ms, pan, lms)[0] ** 2)
  text = jax.jit(jax.grad(loss)).lower(params).compile().as_text()
  groups = {common.by_module(2)(name) for name in _op_names(text)}
  for block in range(4):
    assert {f"PanNet/ResBlock_{block}", f"PanNet/ResBlock_{block} (bwd)"} <= groups
  # Ops of flax's own layers count to the module calling them (PanNet's
  # transposed conv); ops of no module (the loss's mean) to none.
  assert {"PanNet", "PanNet (bwd)", "loss"} <= groups, groups


def test_pansharpener_ops_carry_the_linen_module_paths():
  """The tiny pansharpener's eval forward, lowered: the ASSM block, its
  semantic scan and a cross attention appear under their Linen paths."""
  model = h.build()
  ms, pan, lms = h.inputs(height=16)
  variables = jax.eval_shape(model.init, h.key(), ms, pan, lms)
  text = jax.jit(model.apply).lower(variables, ms, pan, lms).as_text(
      debug_info=True)
  paths = set(re.findall(r"Pansharpener(?:/\w+)+", text))
  assert "Pansharpener/decoder/assm_0/block_0" in {
      "/".join(p.split("/")[:4]) for p in paths}, sorted(paths)[:20]
  assert any(p.startswith("Pansharpener/decoder/cross_0/") for p in paths)
  assert any(p.startswith("Pansharpener/head_full/") for p in paths)
