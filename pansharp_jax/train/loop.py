"""The training loop: one readable function, in sections (big_vision style)."""

import json
import os
import time

from absl import logging
import jax
import numpy as np

from pansharp_jax import evaluate
from pansharp_jax.data import pipeline, sources
from pansharp_jax.train import builder, checkpoint, parallel, step as step_lib
from pansharp_jax.train.logging import MetricWriter


def _save_config(config, workdir):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (resuming from WORKDIR/checkpoints if present), evaluates, reports."""
  is_chief = jax.process_index() == 0
  if is_chief:
    _save_config(config, workdir)

  # ---- mesh ----
  mesh = parallel.make_mesh()
  host_batch = parallel.check_batch_size(int(config.batch_size), mesh)

  # ---- input ----
  train_source = sources.make_source(config.data, "train")
  val_source = sources.make_source(config.data, "val")
  train_iter = iter(pipeline.train_dataset(
      train_source, config.data, batch_size=host_batch, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count()))

  # ---- model + state ----
  model, optimizer, schedule, state = builder.build(config, mesh)

  # ---- checkpoint / resume ----
  manager = checkpoint.make_manager(workdir, config)
  restored = checkpoint.restore_latest(
      manager, checkpoint.abstract_like(state), train_iter)
  if restored is not None:
    state = restored
    logging.info("Resumed from step %d", int(state.step))

  # ---- update ----
  train_step = jax.jit(
      step_lib.make_train_step(model, optimizer, schedule, config),
      in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
      out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
      donate_argnums=(0,))
  predict = builder.make_predict(model)

  # ---- evals ----
  def run_eval(state):
    rows = evaluate.evaluate_source(
        lambda b: predict(state.ema_params, state.model_state, b), val_source,
        pipeline.eval_batches(val_source, int(config.eval_batch_size)))
    return rows

  # ---- loop ----
  writer = MetricWriter(workdir, enabled=is_chief)
  first_step = int(state.step)
  total_steps = int(config.num_train_steps)
  tick, tick_step = time.time(), first_step
  for step in range(first_step + 1, total_steps + 1):
    batch = parallel.shard_batch(next(train_iter), mesh)
    state, metrics = train_step(state, batch)
    if step % config.log_every == 0 or step == total_steps:
      metrics = jax.device_get(metrics)
      elapsed = time.time() - tick
      metrics["step_time"] = elapsed / max(step - tick_step, 1)
      metrics["images_per_sec"] = (step - tick_step) * config.batch_size / elapsed
      writer.write(step, metrics)
      tick, tick_step = time.time(), step
    if step % config.eval_every == 0 and step != total_steps:
      writer.write(step, evaluate.summarize(run_eval(state))["model"], "val")
    if step % config.checkpoint_every == 0 or step == total_steps:
      checkpoint.save(manager, state, train_iter)
  manager.wait_until_finished()

  # ---- final report ----
  rows = run_eval(state)
  report = None
  if is_chief:
    report = evaluate.write_report(rows, os.path.join(workdir, "eval"),
                                   {"step": int(state.step), "split": "val"})
    writer.write(int(state.step), report["mean"]["model"], "val")
    logging.info("Final: %s", json.dumps(report["mean"]))
  writer.close()
  manager.close()
  return report
