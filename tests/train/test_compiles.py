"""Each program of a training run is compiled once: the fixed CPU cost that
docs/recipes.md ("What the fixed cost is made of") measures counts on it."""

import collections
import re

import jax
import train_tiny

from pansharp_jax.train import loop


def _compiles(caplog) -> collections.Counter:
  """{jitted function: executables built} from JAX's compile log."""
  return collections.Counter(
      re.findall(r"Finished XLA compilation of jit\(([^)]+)\)", caplog.text))


def test_a_run_compiles_init_train_step_and_eval_forward_once(tmp_path, caplog):
  """Two validations (the periodic one, then the final one with every
  baseline) of 4 tiles in batches of 2, after the ahead-of-time compile of
  the train step that reports its memory: one program each."""
  config = train_tiny.config(num_train_steps=2, eval_every=1, log_every=1,
                             eval_batch_size=2)
  config.data.synthetic.num_val = 4
  with jax.log_compiles(), caplog.at_level("WARNING"):
    report = loop.train_and_evaluate(config, str(tmp_path))
  counts = _compiles(caplog)
  # <lambda>: the init.
  assert (counts["<lambda>"], counts["train_step"], counts["predict_fn"]) == (1, 1, 1), counts
  assert report["mean"]["model"]["psnr"] > 0
