"""The loop end to end: exact resume after kill -9 and after SIGTERM, rerunning a
finished run, stopping on a non-finite loss, and a non-finite validation metric."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import train_tiny

from pansharp_jax import errors, evaluate
from pansharp_jax.data import sources
from pansharp_jax.train import checkpoint, loop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 20
_VOLATILE = ("time", "step_time", "images_per_sec")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """Subprocess environment; runs share one persistent compilation cache."""
  cache = str(tmp_path_factory.mktemp("jax_cache"))
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
              JAX_COMPILATION_CACHE_DIR=cache,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _command(workdir):
  return [sys.executable, "tests/train/train_tiny.py", "--config",
          "configs/default.py", "--workdir", str(workdir),
          f"--config.num_train_steps={STEPS}", *train_tiny.FLAGS]


def _run(workdir, env):
  result = subprocess.run(_command(workdir), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _signal_after_checkpoint(workdir, env, signum, after_step):
  """Starts a run and sends it `signum` once a checkpoint past `after_step`
  is complete; returns (exit code, stderr)."""
  proc = subprocess.Popen(_command(workdir), cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while not any(s > after_step for s in _saved_steps(workdir)):
    if proc.poll() is not None:
      pytest.fail("the run ended before it could be interrupted:\n" +
                  proc.communicate()[1][-3000:])
    assert time.time() < deadline
    time.sleep(0.02)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=600)
  return proc.returncode, stderr


def _saved_steps(workdir):
  """Complete checkpoints (orbax renames a step's directory when done)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(s) for s in os.listdir(directory) if s.isdigit())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
  workdir = tmp_path_factory.mktemp("reference")
  _run(workdir, env)
  return workdir


def _metrics(workdir):
  """The last record per (split, step), without timings."""
  records = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      r = json.loads(line)
      records[r["split"], r["step"]] = {k: v for k, v in r.items()
                                        if k not in _VOLATILE}
  return records


def _final_state(workdir):
  path = os.path.join(workdir, "checkpoints", str(STEPS), "state")
  return jax.tree.leaves(ocp.StandardCheckpointer().restore(path))


def _assert_same_run(workdir, reference):
  assert _metrics(workdir) == _metrics(reference)
  for a, b in zip(_final_state(workdir), _final_state(reference), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with open(os.path.join(workdir, "eval", "report.json")) as f, \
       open(os.path.join(reference, "eval", "report.json")) as g:
    assert json.load(f) == json.load(g)


def test_interrupted_runs_resume_exactly(reference, tmp_path, env):
  """SIGTERM, resume, kill -9, resume: the result is bitwise the uninterrupted
  run's; running the finished command again trains nothing."""
  workdir = tmp_path / "run"

  # SIGTERM: a checkpoint at the current step, exit 0, no final report.
  code, stderr = _signal_after_checkpoint(workdir, env, signal.SIGTERM, 0)
  assert code == 0, stderr[-3000:]
  stopped = [line for line in stderr.splitlines() if "Stopped by SIGTERM" in line]
  assert stopped, stderr[-3000:]
  step = int(stopped[0].split("at step ")[1].split(";")[0])
  assert step < STEPS and _saved_steps(workdir)[-1] == step
  assert not os.path.exists(workdir / "eval")

  # Resume, then kill -9 once a later checkpoint is complete.
  code, stderr = _signal_after_checkpoint(workdir, env, signal.SIGKILL, step)
  assert code == -signal.SIGKILL
  assert f"Resumed from step {step}" in stderr
  saved = _saved_steps(workdir)[-1]
  assert step < saved < STEPS, stderr[-3000:]

  result = _run(workdir, env)
  assert f"Resumed from step {saved}" in result.stderr
  _assert_same_run(workdir, reference)

  # The same command on a finished run resumes, trains nothing, re-evaluates.
  records = _metrics(workdir)
  result = _run(workdir, env)
  assert f"Already trained to step {STEPS} of {STEPS}" in result.stderr
  assert _metrics(workdir).keys() == records.keys()
  _assert_same_run(workdir, reference)


class _NaNTargets:
  """A source whose targets are all NaN (every batch gives a NaN loss)."""

  def __init__(self, source):
    self._source = source
    self.max_value = source.max_value

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    item = dict(self._source[index])
    item["gt"] = np.full_like(item["gt"], np.nan)
    return item


def test_nonfinite_loss_stops_after_max_in_a_row(tmp_path, monkeypatch):
  make_source = sources.make_source
  monkeypatch.setattr(sources, "make_source", lambda data, split: (
      _NaNTargets(make_source(data, split)) if split == "train"
      else make_source(data, split)))
  config = train_tiny.config(num_train_steps=10, max_nonfinite=3, log_every=1,
                             checkpoint_every=2, eval_every=100)
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"non-finite for 3 steps in a row \(steps 1-3\).*"
                           r"last checkpoint, step 2, is kept"):
    loop.train_and_evaluate(config, str(tmp_path))

  with open(tmp_path / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert [r["skipped_steps"] for r in records] == [1, 1, 1]
  # The last checkpoint restores, with the initial (finite) params.
  manager = checkpoint.make_manager(str(tmp_path), config)
  raw = ocp.StandardCheckpointer().restore(
      os.path.join(manager.directory, "2", "state"))
  manager.close()
  assert int(raw["step"]) == 2 and int(raw["nonfinite"]) == 2
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(raw["params"]))


def test_non_finite_validation_metric_is_never_the_best(tmp_path, monkeypatch,
                                                        caplog):
  """A NaN first validation exports no best model and is logged as such."""
  summarize = evaluate.summarize

  def nan_psnr(rows):
    summary = summarize(rows)
    summary["model"]["psnr"] = float("nan")
    return summary

  monkeypatch.setattr(evaluate, "summarize", nan_psnr)
  config = train_tiny.config(num_train_steps=1, eval_every=1)
  with caplog.at_level("WARNING"):
    loop.train_and_evaluate(config, str(tmp_path))
  assert checkpoint.restore_best(str(tmp_path), None) is None
  assert "Validation psnr is nan at step 1; not kept as the best" in caplog.text


def test_warmup_in_epochs_counts_the_train_split_and_batch(tmp_path):
  """8 training samples in batches of 8 (picked by the memory probe): a
  3-epoch warmup is 3 steps."""
  config = train_tiny.config(num_train_steps=2, log_every=1, eval_every=100,
                             batch_size=-1)
  config.probe.max_batch_size = 8
  config.optim.warmup_steps = 0
  config.optim.warmup_epochs = 3.0
  loop.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "metrics.jsonl") as f:
    lrs = [r["lr"] for r in map(json.loads, f) if r["split"] == "train"]
  assert lrs == pytest.approx([config.optim.lr / 3, 2 * config.optim.lr / 3])


def test_an_error_in_the_final_validation_keeps_the_last_step_and_is_one_line(
    tmp_path, monkeypatch):
  """The last step is saved before the final validation; a crash inside it
  is an EvaluationError of one line, and the rerun resumes from that step."""
  score = evaluate.evaluate_source

  def crash_when_full(*args, **kwargs):
    if kwargs.get("full"):
      raise ValueError("q: a broken metric\nsecond line")
    return score(*args, **kwargs)

  monkeypatch.setattr(evaluate, "evaluate_source", crash_when_full)
  config = train_tiny.config(num_train_steps=4, eval_every=2, checkpoint_every=100)
  with pytest.raises(errors.EvaluationError) as e:
    loop.train_and_evaluate(config, str(tmp_path))
  assert str(e.value) == ("validation at step 4 failed (ValueError: q: a broken metric); "
                          "the checkpoint of step 4 is saved")
  manager = checkpoint.make_manager(str(tmp_path), config)
  assert manager.all_steps() == [4]
  manager.close()
  monkeypatch.setattr(evaluate, "evaluate_source", score)
  report = loop.train_and_evaluate(config, str(tmp_path))
  assert report["step"] == 4 and report["weights"] == "latest"


def test_an_error_in_a_periodic_validation_saves_the_step_it_reached(tmp_path,
                                                                      monkeypatch):
  def crash(*args, **kwargs):
    raise RuntimeError("out of memory")

  monkeypatch.setattr(evaluate, "evaluate_source", crash)
  config = train_tiny.config(num_train_steps=6, eval_every=3, checkpoint_every=100)
  with pytest.raises(errors.EvaluationError,
                     match=r"^validation at step 3 failed \(RuntimeError: out of memory\)"):
    loop.train_and_evaluate(config, str(tmp_path))
  manager = checkpoint.make_manager(str(tmp_path), config)
  assert manager.all_steps() == [3]
  manager.close()


def test_a_best_final_validation_stays_the_best_when_training_is_extended(
    tmp_path, monkeypatch):
  """The last step is saved before its validation, so that checkpoint holds the
  best value before the final one; resumed for more steps, a later value
  better than that but worse than the final one must not replace best/."""
  summarize, values = evaluate.summarize, []

  def scripted_psnr(rows):
    summary = summarize(rows)
    summary["model"]["psnr"] = values.pop(0)
    return summary

  monkeypatch.setattr(evaluate, "summarize", scripted_psnr)
  values[:] = [1.0, 3.0]  # steps 2 and 4 (the final validation: a new best)
  loop.train_and_evaluate(train_tiny.config(num_train_steps=4, eval_every=2),
                          str(tmp_path))
  values[:] = [2.0]  # step 6: better than step 2, worse than step 4
  loop.train_and_evaluate(train_tiny.config(num_train_steps=6, eval_every=2),
                          str(tmp_path))
  assert values == []
  assert sorted(os.listdir(tmp_path / "best")) == ["4"]
  with open(tmp_path / "best" / "4" / "info" / "metadata") as f:
    assert json.load(f)["value"] == 3.0
