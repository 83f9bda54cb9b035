"""The training loop: one readable function, in sections (big_vision style).

Always resumes from WORKDIR/checkpoints when there is a checkpoint there, so
running the same command again continues (or, when finished, only evaluates).
"""

import json
import os
import time

from absl import logging
import jax
import numpy as np

from pansharp_jax import curves, evaluate
from pansharp_jax.data import pipeline, sources
from pansharp_jax.errors import ConfigError, DataError
from pansharp_jax.train import builder, checkpoint, memory, parallel, preemption
from pansharp_jax.train import profiling
from pansharp_jax.train import schedule as schedule_lib
from pansharp_jax.train import logging as log_lib


class NonFiniteLossError(RuntimeError):
  """The loss stayed NaN/Inf for `max_nonfinite` steps in a row."""


def _save_config(config, workdir):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def _is_new_best(name: str, value: float, best: float, mode: str,
                 step: int) -> bool:
  """Whether `value` beats `best` (NaN until a first value is kept).

  A non-finite value never does, and says so in the log: kept, a NaN would
  be exported as the best model and make any later value an improvement.
  """
  if not np.isfinite(value):
    logging.warning("Validation %s is %s at step %d; not kept as the best",
                    name, value, step)
    return False
  if np.isnan(best):
    return True
  return value > best if mode == "max" else value < best


def _with_exported_best(state, info: dict | None, config, sharding):
  """`state` whose best_metric also counts the best export's value. The last
  step is saved before its validation, so that checkpoint misses a best
  value the final validation exported; training resumed past it (a larger
  num_train_steps) must not replace best/ with a worse model."""
  if (info is None or info.get("metric") != config.best_metric
      or info.get("mode") != config.best_mode or info.get("step", np.inf) > int(state.step)):
    return state
  value = float(info["value"])
  if not _is_new_best(config.best_metric, value, float(state.best_metric), config.best_mode,
                      int(state.step)):
    return state
  return state.replace(best_metric=jax.device_put(np.float32(value), sharding))


def train_and_evaluate(config, workdir: str) -> dict | None:
  """Trains (resuming from WORKDIR/checkpoints), validates, reports.

  Returns the final evaluation report, or None when a SIGTERM/SIGINT stopped
  the run (after it saved a checkpoint). Raises NonFiniteLossError when the
  loss stays non-finite; the checkpoints already written are kept.
  """
  is_chief = jax.process_index() == 0
  checkpoint.check_saved_model(config, workdir)  # before config.json is replaced
  if is_chief:
    _save_config(config, workdir)

  # ---- mesh ----
  mesh = parallel.make_mesh()

  # ---- input sources ----
  # Built before the model is traced and compiled, so a bad dataset fails in
  # a second with its DataError rather than after the compile.
  train_source = sources.make_source(config.data, "train")
  val_source = sources.make_source(config.data, "val")
  # The final validation's preconditions, checked before any step.
  val_protocol = evaluate.check_scorable(val_source, "val split", int(config.data.ratio))
  if getattr(val_source, "coverage", None):
    logging.info("Tiles per split (fraction of the scenes): %s", json.dumps(val_source.coverage))

  # ---- model ----
  # The batch size first: a schedule given in epochs needs it.
  batch_size = int(config.batch_size)
  if batch_size == -1:
    probed = memory.probe_config(config, mesh)
    logging.info("Memory probe:\n%s", memory.format_table(probed))
    batch_size = probed.batch_size
  parallel.check_batch_size(batch_size, mesh)
  config = schedule_lib.epochs_to_steps(config, len(train_source), batch_size)
  logging.info("Schedule: %d warmup steps, restart period %d steps",
               config.optim.warmup_steps, config.optim.restart_period)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  init = builder.make_init(config, model, optimizer, mesh)
  rng = jax.random.PRNGKey(config.seed)
  abstract_state = jax.eval_shape(init, rng)
  train_step = builder.jit_train_step(model, optimizer, config, mesh)

  # ---- state: resume or init ----
  manager = checkpoint.make_manager(workdir, config)
  state = checkpoint.restore_latest(
      manager, abstract_state, model.linen_paths(int(config.data.ratio)))
  if state is None:
    state = init(rng)
  else:
    checkpoint.set_aside_newer(manager, int(state.step))
    logging.info("Resumed from step %d", int(state.step))

  # ---- input pipeline ----
  # This host's rows of the global batches, from the step after the state's.
  train_iter = iter(pipeline.train_dataset(
      train_source, config.data, batch_size=batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      start_step=int(state.step)))
  if is_chief:
    log_lib.log_parameter_overview(state.params, workdir)

  # ---- compile ----
  # Ahead of time, to report XLA's memory estimate; the first call reuses it.
  plan = memory.budget(config)
  _, usage = memory.measure(train_step, abstract_state, batch_size, config,
                            mesh, plan.bytes)
  logging.log(logging.INFO if usage.fits else logging.WARNING,
              "Train step at global batch %d needs %.3f GiB per device (%s %.2f "
              "GiB budget, %s)", batch_size, usage.total / memory.GIB,
              "within the" if usage.fits else "OVER the", plan.bytes / memory.GIB,
              plan.source)

  # ---- evals ----
  predict = builder.make_predict(model)
  best_manager = checkpoint.make_best_manager(workdir)
  state = _with_exported_best(state, checkpoint.best_info(best_manager), config,
                              parallel.replicated(mesh))

  def validate(state, full=False):
    """Per-image rows of the EMA model on the val split: beside EXP with the
    quick metrics, or (full, the final report) beside every baseline with
    every metric, plus quicklooks."""
    quicklooks = os.path.join(workdir, "eval", "quicklooks")
    variables = {"params": state.ema_params, **state.model_state}
    return evaluate.evaluate_source(
        lambda b: predict(variables, b), val_source,
        pipeline.eval_batches(val_source, int(config.eval_batch_size)),
        full=full, sensor=config.data.sensor,
        quicklook_dir=quicklooks if full and is_chief else None)

  def checked_validate(state, full=False):
    """`validate`; on an error, the state is saved first (its step then
    resumes) and the error is one line."""
    step = int(state.step)
    try:
      return validate(state, full=full)
    except Exception as e:  # pylint: disable=broad-except
      checkpoint.save(manager, state, force=True)
      manager.wait_until_finished()
      if isinstance(e, (ConfigError, DataError)):
        raise
      raise evaluate.failed(f"validation at step {step}", e,
                            f"the checkpoint of step {step} is saved") from e

  def track_best(state, summary):
    """Exports the EMA model when `config.best_metric` improves."""
    name = config.best_metric
    if name not in summary:
      raise ConfigError(
          f"config.best_metric: {name!r} is not a validation metric (have "
          f"{', '.join(sorted(summary))})")
    # Every host scored the same images; host 0's value decides for all.
    value = parallel.same_on_all_processes(summary[name])
    best = float(state.best_metric)
    if not _is_new_best(name, value, best, config.best_mode, int(state.step)):
      return state
    state = state.replace(best_metric=jax.device_put(
        np.float32(value), parallel.replicated(mesh)))
    checkpoint.save_best(best_manager, state, {
        "step": int(state.step), "metric": name, "value": value,
        "mode": config.best_mode})
    logging.info("New best %s=%.4f at step %d", name, value, int(state.step))
    return state

  # ---- loop ----
  total_steps = int(config.num_train_steps)
  first_step = int(state.step)
  if first_step >= total_steps:
    logging.info("Already trained to step %d of %d", first_step, total_steps)
  progress = log_lib.Progress(total_steps, first_step, enabled=is_chief)
  writer = log_lib.MetricWriter(
      workdir, enabled=is_chief,
      console=progress.write if progress.active else None)
  max_nonfinite = int(config.max_nonfinite)
  trace = profiling.StepTrace(config.profile, workdir)

  def check_finite(metrics, step):
    """Stops when the streak of non-finite steps reaches max_nonfinite."""
    streak = int(metrics["nonfinite"])
    if streak >= max_nonfinite:
      manager.wait_until_finished()
      raise NonFiniteLossError(
          f"training stopped at step {step}: the loss or its gradient was "
          f"non-finite for {streak} steps in a row (steps {step - streak + 1}-"
          f"{step}); those updates were skipped and the last checkpoint, step "
          f"{manager.latest_step()}, is kept. Lower optim.lr, set "
          "model.dtype=float32 or check the data.")

  history, pending, final_rows, preempted = [], None, None, False
  tick, paused = time.perf_counter(), 0.0
  try:
    with preemption.StopRequest() as stop:
      for step in range(first_step + 1, total_steps + 1):
        batch = parallel.shard_batch(next(train_iter), mesh)
        with trace.step(step):
          state, metrics = train_step(state, batch)
        trace.after(metrics)
        history.append(metrics)
        # The previous step's streak: reading it waits for that step only,
        # so the device always has the current one queued.
        if pending is not None:
          check_finite(*pending)
        pending = (metrics, step)
        progress.update()

        if step % config.log_every == 0 or step == total_steps:
          summary = log_lib.average_metrics(jax.device_get(history))
          elapsed = time.perf_counter() - tick - paused
          summary["step_time"] = elapsed / len(history)
          summary["images_per_sec"] = len(history) * batch_size / elapsed
          summary.update(memory.device_memory())
          writer.write(step, summary)
          progress.set_postfix(loss=summary["loss"], psnr=summary["psnr"])
          history, tick, paused = [], time.perf_counter(), 0.0
          check_finite(*pending)
          pending = None

        start = time.perf_counter()
        if step == total_steps:
          # Saved before the final validation can fail; its best_metric is
          # that of the earlier validations (a resumed run takes best/'s
          # value into account: _with_exported_best).
          checkpoint.save(manager, state, force=True)
        if step % config.eval_every == 0 or step == total_steps:
          rows = checked_validate(state, full=step == total_steps)
          summary = evaluate.summarize(rows)["model"]
          state = track_best(state, summary)
          if step == total_steps:
            final_rows = rows
          else:
            writer.write(step, summary, "val")
        if step % config.checkpoint_every == 0 or step == total_steps:
          checkpoint.save(manager, state)
        if parallel.any_process(stop.requested):
          checkpoint.save(manager, state, force=True)
          logging.warning("Stopped by %s at step %d; checkpoint saved. Run the "
                          "same command to resume.",
                          stop.signal_name or "a signal to another host", step)
          preempted = True
          break
        paused += time.perf_counter() - start

    # ---- final report ----
    report = None
    if not preempted:
      rows = final_rows or checked_validate(state, full=True)
      if is_chief:
        report = evaluate.write_report(rows, os.path.join(workdir, "eval"), {
            "step": int(state.step), "split": "val", "weights": "latest",
            "protocol": evaluate.PROTOCOLS[val_protocol], "source": config.data.source,
            **evaluate.coverage_of(val_source)})
        writer.write(int(state.step), report["mean"]["model"], "val")
        curves.write_curves(os.path.join(workdir, "eval", "curves.png"),
                            os.path.join(workdir, "metrics.jsonl"), report["mean"])
        logging.info("Final: %s", json.dumps(report["mean"]))
    return report
  finally:
    trace.stop()
    progress.close()
    writer.close()
    best_manager.close()  # close() waits for pending async saves
    manager.close()
