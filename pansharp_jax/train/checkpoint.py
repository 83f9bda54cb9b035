"""Orbax checkpoints: the train state under WORKDIR/checkpoints, the exported
best model (EMA params) under WORKDIR/best.

The data position is not saved: the training batches are a function of
(seed, step) (data/pipeline.py), so a run resumes at the restored step on
any number of processes.

A checkpoint step directory appears only once it is complete (orbax writes to
a temporary name and renames), so a kill mid-save leaves the previous
checkpoints intact. A finished checkpoint whose files were damaged later is
skipped on restore in favour of the one before it.

`check_saved_model` refuses weights whose run (its config.json) trained
another `model.head` / `model.input_norm` (same shapes, other meaning) or
`model.detail_input`, `model.dim` or `model.full_refine` (other shapes or
layers: orbax would fail on them obscurely).
"""

import json
import os
import shutil

from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from pansharp_jax.errors import CheckpointError
from pansharp_jax.models import pansharpener, sizes
from pansharp_jax.train import linen_restore
from pansharp_jax.train import parallel


# Pansharpener fields that change what its weights mean (head, input_norm:
# not their shapes; detail_input: the first convs' inputs; full_refine:
# layers of their own; dim: every width), with the value runs saved before
# the field existed had.
_WEIGHT_FIELDS = {**pansharpener.CONFIG_OPTIONS, "dim": 0}


def has_steps(folder: str) -> bool:
  """Whether `folder` (a workdir's checkpoints/ or best/) holds a step."""
  try:
    names = os.listdir(folder)
  except (FileNotFoundError, NotADirectoryError):
    return False
  return any(n.isdigit() and os.path.isdir(os.path.join(folder, n)) for n in names)


def check_saved_model(config, workdir: str) -> None:
  """Raises CheckpointError when WORKDIR's weights were trained with another
  `model.head`, `model.input_norm`, `model.detail_input`, `model.dim` or
  `model.full_refine` than `config`
  names (read from the run's config.json): they would load and fuse
  wrongly, or fail to load with orbax's shape error."""
  path = os.path.join(workdir, "config.json")
  if config.model.name != "pansharpener" or not any(
      has_steps(os.path.join(workdir, folder)) for folder in ("checkpoints", "best")):
    return
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError):  # no readable record of the run: nothing to check
    return
  saved = saved.get("model") if isinstance(saved, dict) else None
  # Runs from before model.name existed trained the only model there was.
  if (not isinstance(saved, dict) or
      saved.get("name", "pansharpener") != "pansharpener"):
    return
  for field, before in _WEIGHT_FIELDS.items():
    trained, now = saved.get(field, before), config.model.get(field, before)
    if _built(field, trained, saved) != _built(field, now, config.model):
      raise CheckpointError(
          f"{path}: its weights were trained with model.{field}={trained}, "
          f"the config has {now}; pass --config.model.{field}={trained}")


def _built(field, value, model):
  """What `value` of `field` builds: dim 0 is the size's own width, so
  tiny's dim=0 and dim=16 are the same weights."""
  if field == "dim" and model.get("size") in sizes.SIZES:
    return sizes.resolve({"size": model.get("size"), "dim": value}).dim
  return value


def make_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=int(config.keep_checkpoints), create=True,
      enable_async_checkpointing=True,
      # Leftovers of a save that was killed midway.
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def save(manager: ocp.CheckpointManager, state, *, force=False) -> bool:
  """Saves (asynchronously) at `state.step` unless that step is already saved."""
  step = int(jax.device_get(state.step))
  if manager.latest_step() == step:
    return False
  return manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state)), force=force)


def _restore_or_convert(manager, step, item, abstract, linen_paths):
  """Item `item` of checkpoint `step` into `abstract`; one the Linen models
  wrote is converted when `linen_paths` ({NNX path: Linen path}) is given."""
  try:
    return manager.restore(step, args=ocp.args.Composite(
        **{item: ocp.args.StandardRestore(abstract)}))[item]
  except Exception as error:  # pylint: disable=broad-except
    if not linen_paths:
      raise
    try:
      converted = linen_restore.restore(manager, step, item, abstract,
                                        linen_paths)
    except Exception:  # pylint: disable=broad-except
      raise error from None  # not a Linen tree either: the first failure
    logging.info("%s/%d: written by the Linen models, converted to NNX",
                 manager.directory, step)
    return converted


def restore_latest(manager: ocp.CheckpointManager, abstract_state,
                   linen_paths: dict | None = None):
  """Restores the newest checkpoint that reads back, into `abstract_state`'s
  shapes and shardings (checkpoints of older versions also hold a grain
  iterator, left unread; those of the Linen models are converted with
  `linen_paths`, {NNX path: Linen path}).

  Returns None when there is no checkpoint. A checkpoint that fails to load
  is skipped with a warning and the one before it is tried; if none loads
  (e.g. the config no longer matches them), raises CheckpointError.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  errors = []
  for step in steps:
    try:
      restored = _restore_or_convert(manager, step, "state", abstract_state,
                                     linen_paths)
      failure = None
    except Exception as e:  # pylint: disable=broad-except
      # Orbax and tensorstore report damaged files with many exception types.
      failure = f"{type(e).__name__}: {e}"
    # Every host takes the same step: hosts resumed at different steps would
    # wait forever for each other's saves.
    if parallel.any_process(failure is not None):
      failure = failure or "it did not load on another host"
      logging.warning("Checkpoint %s/%d does not load (%s); trying the one "
                      "before it.", manager.directory, step, failure)
      errors.append(f"step {step}: {failure}")
      continue
    return restored
  if errors:
    raise CheckpointError(
        f"{manager.directory}: no checkpoint loads ({'; '.join(errors)[:2000]})")
  return None


def set_aside_newer(manager: ocp.CheckpointManager, step: int) -> list[int]:
  """Moves checkpoints newer than `step` (ones that failed to load) to
  `checkpoints.damaged/`, so training can save those steps again."""
  newer = [s for s in manager.all_steps() if s > step]
  if newer and jax.process_index() == 0:
    damaged = f"{manager.directory}.damaged"
    os.makedirs(damaged, exist_ok=True)
    for s in newer:
      target = os.path.join(damaged, str(s))
      shutil.rmtree(target, ignore_errors=True)
      os.rename(os.path.join(manager.directory, str(s)), target)
      logging.warning("Moved unreadable checkpoint %d to %s", s, target)
  if newer:
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("checkpoint.set_aside_newer")
    manager.reload()
  return newer


# ---- best model export ----

def make_best_manager(workdir: str) -> ocp.CheckpointManager:
  """WORKDIR/best: the EMA params of the best validation so far (one kept)."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=1, create=True, enable_async_checkpointing=True,
      cleanup_tmp_directories=True,
      # Orbax names its cross-host barriers by step: without a prefix, a best
      # export and a checkpoint of the same step collide on several hosts.
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix="best"))
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "best")),
                               options=options)


def save_best(manager: ocp.CheckpointManager, state, info: dict) -> None:
  """Exports the EMA model as flax variables ({'params': EMA, **model_state})
  with `info` (step, metric, value)."""
  step = int(jax.device_get(state.step))
  if manager.latest_step() == step:
    return
  variables = {"params": state.ema_params, **state.model_state}
  manager.save(step, force=True, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(variables), info=ocp.args.JsonSave(info)))


def best_info(manager: ocp.CheckpointManager) -> dict | None:
  """The info (step, metric, value, mode) of the best export, or None."""
  step = manager.latest_step()
  if step is None:
    return None
  return manager.restore(step, args=ocp.args.Composite(info=ocp.args.JsonRestore()))["info"]


def restore_best(workdir: str, abstract_variables,
                 linen_paths: dict | None = None):
  """(variables, info) exported to WORKDIR/best, or None if there are none;
  an export of the Linen models is converted with `linen_paths`."""
  if not os.path.isdir(os.path.join(workdir, "best")):
    return None
  manager = make_best_manager(workdir)
  try:
    step = manager.latest_step()
    if step is None:
      return None
    variables = _restore_or_convert(manager, step, "variables",
                                    abstract_variables, linen_paths)
    info = manager.restore(step, args=ocp.args.Composite(
        info=ocp.args.JsonRestore()))["info"]
    return variables, info
  finally:
    manager.close()
