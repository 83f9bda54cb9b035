"""Runs saved by the Linen models restore into the NNX ones (issue 33).

fixtures/linen_run was written by main before the NNX migration:
`tests/train/train_tiny.py` with LINEN_FLAGS (10 steps, dropout 0), its
checkpoint of step 5, its best export (the EMA of step 10) and its
metrics.jsonl. The checkpoint resumes on today's code with the losses of
the uninterrupted Linen run (to float32 rounding); the best export loads as the EMA the resumed
run reaches.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import train_tiny

from pansharp_jax import inference
from pansharp_jax.train import linen_restore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "linen_run")
LINEN_FLAGS = ["--config.num_train_steps=10", "--config.model.dropout=0.0",
               *train_tiny.FLAGS]
_VOLATILE = ("time", "step_time", "images_per_sec")


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return {r["step"]: {k: v for k, v in r.items() if k not in _VOLATILE}
          for r in records if r["split"] == "train"}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("resumed"))
  shutil.copytree(os.path.join(FIXTURE, "checkpoints"),
                  os.path.join(workdir, "checkpoints"))
  result = subprocess.run(
      [sys.executable, "tests/train/train_tiny.py", "--config",
       "configs/default.py", "--workdir", workdir, *LINEN_FLAGS],
      cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT),
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "written by the Linen models" in result.stderr
  return workdir


def test_a_linen_checkpoint_resumes_with_the_uninterrupted_losses(resumed):
  got, linen = _train_records(resumed), _train_records(FIXTURE)
  assert sorted(got) == [6, 7, 8, 9, 10]  # resumed after step 5
  for step in got:
    assert set(got[step]) == set(linen[step])
    for key, value in got[step].items():
      if isinstance(value, str):
        assert value == linen[step][key]
      else:
        # The same maths as another XLA program: a float32 rounding apart
        # (the loss of step 6 is 1 ulp off, its gradient norm exact).
        np.testing.assert_allclose(value, linen[step][key], rtol=1e-5,
                                   err_msg=f"step {step} {key}")


def test_a_linen_best_export_loads_as_the_resumed_ema(resumed, tmp_path):
  workdir = str(tmp_path)
  shutil.copytree(os.path.join(FIXTURE, "best"), os.path.join(workdir, "best"))
  config = train_tiny.config()
  config.model.dropout = 0.0
  restored = inference.restore(config, workdir, weights="best")
  assert restored.step == 10
  state = ocp.StandardCheckpointer().restore(
      os.path.join(resumed, "checkpoints", "10", "state"))
  expected = {"params": state["ema_params"], **state["model_state"]}
  assert (jax.tree.structure(jax.tree.map(np.asarray, restored.variables))
          == jax.tree.structure(expected))
  for a, b in zip(jax.tree.leaves(restored.variables), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_a_tree_of_another_network_is_refused():
  abstract = {"params": {"conv_in": {"kernel": jax.ShapeDtypeStruct((2,), np.float32)}}}
  paths = {("conv_in", "kernel"): ("Conv_0", "kernel")}
  converted = linen_restore.from_linen(
      {"params": {"Conv_0": {"kernel": np.ones(2)}}}, abstract, paths)
  np.testing.assert_array_equal(converted["params"]["conv_in"]["kernel"], 1.0)
  with pytest.raises(KeyError, match="params/Conv_0/kernel"):
    linen_restore.from_linen({"params": {"Dense_0": {"kernel": np.ones(2)}}},
                             abstract, paths)
