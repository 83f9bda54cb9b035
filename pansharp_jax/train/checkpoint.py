"""Orbax checkpoints of the train state and the grain iterator, under WORKDIR/checkpoints."""

import os

import grain
import jax
import orbax.checkpoint as ocp


def make_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=int(config.keep_checkpoints), create=True,
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def save(manager: ocp.CheckpointManager, state, data_iter, *, force=False) -> bool:
  step = int(jax.device_get(state.step))
  args = {"state": ocp.args.StandardSave(state)}
  if data_iter is not None:
    args["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
  return manager.save(step, args=ocp.args.Composite(**args), force=force)


def restore_latest(manager: ocp.CheckpointManager, abstract_state, data_iter):
  """Restores the newest checkpoint into the shapes/shardings of `abstract_state`.

  Returns the restored state, or None when there is no checkpoint. The grain
  iterator, when given, is restored in place.
  """
  step = manager.latest_step()
  if step is None:
    return None
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iter is not None:
    args["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
  restored = manager.restore(step, args=ocp.args.Composite(**args))
  return restored["state"]


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) describing `tree`, for restoring into."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
