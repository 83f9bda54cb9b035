"""Each program of a training run is compiled once (its fixed CPU cost:
docs/recipes.md, "Where ours' CPU goes"), a split's short last batch included."""

import collections
import re

import jax
import numpy as np
import train_tiny

from pansharp_jax.data import pipeline, sources
from pansharp_jax.train import builder, loop, parallel


def _compiles(caplog) -> collections.Counter:
  """{jitted function: executables built} from JAX's compile log."""
  return collections.Counter(re.findall(r"Finished XLA compilation of jit\(([^)]+)\)",
                                        caplog.text))


def test_a_run_compiles_init_train_step_and_eval_forward_once(tmp_path, caplog):
  """3 validation tiles in batches of 2: the last batch of 1 is padded to 2
  rows and runs the eval forward the first batch compiled; two validations
  (the periodic one, then the final one with the baselines) reuse it."""
  config = train_tiny.config(num_train_steps=2, eval_every=1, log_every=1,
                             eval_batch_size=2)
  config.data.synthetic.num_val = 3
  with jax.log_compiles(), caplog.at_level("WARNING"):
    report = loop.train_and_evaluate(config, str(tmp_path))
  counts = _compiles(caplog)
  # <lambda>: the init.
  assert (counts["<lambda>"], counts["train_step"], counts["predict_fn"]) == (1, 1, 1), counts
  assert report["mean"]["model"]["psnr"] > 0


def test_a_short_batch_runs_padded_and_its_rows_are_unchanged(caplog):
  """The rows of a short batch come out as they do inside a full batch, bit
  for bit, and only the full batch's program is built."""
  config = train_tiny.config()
  config.data.synthetic.num_val = 4
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  state = builder.make_init(config, model, optimizer, parallel.make_mesh())(
      jax.random.PRNGKey(0))
  variables = {"params": state.ema_params, **state.model_state}
  full = next(pipeline.eval_batches(sources.make_source(config.data, "val"), 4))
  predict = builder.make_predict(model, batch_size=4)
  with jax.log_compiles(), caplog.at_level("WARNING"):
    whole = np.asarray(predict(variables, full))
    short = np.asarray(predict(variables, {k: v[:3] for k, v in full.items()}))
  assert short.shape == (3,) + whole.shape[1:]
  np.testing.assert_array_equal(short, whole[:3])
  assert _compiles(caplog)["predict_fn"] == 1
