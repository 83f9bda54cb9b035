"""docs/models.md's worked example ("Adding a network"): the network its
code block defines, registered by one NETWORKS entry, trains through the
trainer, and every one of its parameters gets a gradient. The code is read
from the document, so the example cannot drift from what runs."""

import json
import os
import re
import types

import jax
import numpy as np

from pansharp_jax import commands
from pansharp_jax.models import reference_cnns, registry
from tests.train import train_tiny
import model_helpers as h

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "models.md")


def _example():
  """The module that the section's first python block defines."""
  with open(DOC) as f:
    section = f.read().split("## Adding a network", 1)[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  module = types.ModuleType("my_net")
  exec(compile(code, "docs/models.md", "exec"), module.__dict__)  # pylint: disable=exec-used
  return module


def _register(monkeypatch):
  """The example's one registry line, for this test only."""
  monkeypatch.setitem(reference_cnns.NETWORKS, "mynet", _example().MyNet)


def test_example_has_the_documented_parameters_and_all_get_gradients(monkeypatch):
  _register(monkeypatch)
  model = registry.build_model(h.model_config(name="mynet"), 4)
  ms, pan, lms = h.inputs(height=16)
  params = model.init(h.key(), ms, pan, lms)["params"]
  assert jax.tree.map(np.shape, params) == {
      "conv_in": {"kernel": (3, 3, 5, 32), "bias": (32,)},
      "conv_out": {"kernel": (3, 3, 32, 4), "bias": (4,)}}
  (full,) = model.apply({"params": params}, ms, pan, lms)
  assert full.shape == lms.shape
  assert h.dead_parameters(model, params, ms, pan, lms) == []


def test_example_trains_by_its_name(monkeypatch, tmp_path):
  config = train_tiny.config(num_train_steps=2, eval_every=2,
                             checkpoint_every=2, log_every=1)
  _register(monkeypatch)
  config.model.name = "mynet"
  workdir = str(tmp_path / "run")
  commands.train(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    train = [r for r in map(json.loads, f) if r["split"] == "train"]
  assert [r["step"] for r in train] == [1, 2]
  assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in train), train
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))
