"""Where a `benchmarks/presets.py` run's CPU seconds go, phase by phase.

    python -m benchmarks.run_cost --preset=ikonos --model=pansharpener --steps=100
    XLA_FLAGS=--xla_llvm_disable_expensive_passes=true python -m benchmarks.run_cost ...

Builds the run `benchmarks/presets.py` makes for (preset, model, seed 0) and
times, in CPU seconds of this process (user + system, so a busy shared
machine inflates them less than wall seconds), what `train/loop.py` does in
turn: the data sources, the state's init (compile and run), the first batch,
the train step's trace and lowering, its XLA compile, the first step, `--steps` further steps
with their input pipeline, the final evaluation (the eval forward's compile,
the model and the classical methods on every validation tile) and the
checkpoint write. Prints one JSON line: the phases, the CPU seconds per
step, and a digest of the parameters after the steps, which must not move
when a setting is meant to change the cost only (XLA flags, say).
"""

import hashlib
import json
import os
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks.preset_runs import run_settings
from configs import default
from pansharp_jax import evaluate
from pansharp_jax.data import pipeline, sources
from pansharp_jax.train import builder, checkpoint, parallel

PRESET = flags.DEFINE_string("preset", "ikonos", "Sensor preset (or demo).")
MODEL = flags.DEFINE_string("model", "pansharpener", "config.model.name.")
STEPS = flags.DEFINE_integer("steps", 100, "Timed steps after the first.")
SIZE = flags.DEFINE_integer("image_size", 32, "Tile side (PAN/GT px).")
OVERRIDES = flags.DEFINE_multi_string("set", [], "Extra config overrides.")


def make_config():
  """The presets benchmark's config of one run (600 steps' schedule)."""
  config = default.get_config()
  settings = run_settings(PRESET.value, "0", 600, SIZE.value)
  settings["model.name"] = MODEL.value
  pairs = list(settings.items()) + [o.split("=", 1) for o in OVERRIDES.value]
  for key, value in pairs:
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    current = node[leaf]
    if isinstance(value, str) and not isinstance(current, str):
      value = (value.lower() in ("1", "true") if isinstance(current, bool)
               else type(current)(value))
    node[leaf] = value
  return config


def digest(tree) -> str:
  leaves = [np.asarray(x).tobytes() for x in jax.tree_util.tree_leaves(tree)]
  return hashlib.sha256(b"".join(leaves)).hexdigest()[:16]


def main(argv):
  del argv
  phases, clock = {}, [time.process_time()]

  def lap(name):
    now = time.process_time()
    phases[name] = round(now - clock[0], 2)
    clock[0] = now

  config = make_config()
  mesh = parallel.make_mesh()
  train_source = sources.make_source(config.data, "train")
  val_source = sources.make_source(config.data, "val")
  lap("data sources")
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  state = jax.block_until_ready(
      builder.make_init(config, model, optimizer, mesh)(
          jax.random.PRNGKey(config.seed)))
  lap("init (compile + run)")
  batches = iter(pipeline.train_dataset(
      train_source, config.data, batch_size=int(config.batch_size),
      seed=config.seed))
  batch = parallel.shard_batch(next(batches), mesh)
  lap("first batch")
  lowered = builder.jit_train_step(model, optimizer, config, mesh).lower(
      state, batch)
  lap("train step: trace + lower")
  step = lowered.compile()
  lap("train step: XLA compile")
  state, _ = jax.block_until_ready(step(state, batch))
  lap("first step")
  for _ in range(STEPS.value):
    state, metrics = step(state, parallel.shard_batch(next(batches), mesh))
  jax.block_until_ready(metrics)
  lap(f"{STEPS.value} steps")
  per_step = phases[f"{STEPS.value} steps"] / STEPS.value
  predict = builder.make_predict(model)
  variables = {"params": state.ema_params, **state.model_state}
  rows = evaluate.evaluate_source(
      lambda b: predict(variables, b), val_source,
      pipeline.eval_batches(val_source, int(config.eval_batch_size)),
      full=True, sensor=config.data.sensor)
  lap("final evaluation")
  with tempfile.TemporaryDirectory() as workdir:
    manager = checkpoint.make_manager(workdir, config)
    checkpoint.save(manager, state, force=True)
    manager.wait_until_finished()
    manager.close()
  lap("checkpoint write")
  fixed = sum(v for k, v in phases.items() if not k.endswith(" steps"))
  print(json.dumps({
      "preset": PRESET.value, "model": MODEL.value,
      "xla_flags": os.environ.get("XLA_FLAGS", ""), "phases": phases,
      "cpu_s_per_step": round(per_step, 4),
      # A run of N steps costs fixed_cpu_s + N * cpu_s_per_step: `fixed`
      # holds the first step, which N counts.
      "fixed_cpu_s": round(fixed - per_step, 1),
      "model_ergas": round(evaluate.summarize(rows)["model"]["ergas"], 4),
      "params_digest": digest(state.params)}))


if __name__ == "__main__":
  app.run(main)
