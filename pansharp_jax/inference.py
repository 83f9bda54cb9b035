"""A trained model, restored from its workdir and ready to run on batches.

The one place that restores weights for use (`--mode=evaluate`, `predict`):
the train state's shapes come from `jax.eval_shape` of its init (nothing is
computed or allocated but the restored arrays), and the EMA params, the
model's weights for every evaluation, are taken from it.

weights:
  latest: the newest checkpoint in WORKDIR/checkpoints (the train state);
  best:   the export in WORKDIR/best (the best validation's EMA variables).
"""

import dataclasses
import os
from typing import Any, Callable

import jax

from pansharp_jax.errors import CheckpointError
from pansharp_jax.train import builder, checkpoint, parallel

WEIGHTS = ("latest", "best")


@dataclasses.dataclass(frozen=True)
class Restored:
  """A model with its flax variables ({'params': EMA params, **model_state})."""
  model: Any
  variables: dict
  step: int

  def batch_fn(self) -> Callable[[dict], jax.Array]:
    """{ms, pan, lms} batch -> full-resolution output in [0, 1] (a jax array,
    possibly not ready yet), split over this host's devices."""
    predict = builder.make_predict(self.model)
    return lambda batch: predict(self.variables, batch)


def require_checkpoint(workdir: str, weights: str = "latest",
                       purpose: str = "use") -> None:
  """Fails before any model is built or compiled when there is nothing to
  load; `purpose` completes "no checkpoint to ..." in the message."""
  if weights not in WEIGHTS:
    raise CheckpointError(f"weights: {weights!r} is not one of {', '.join(WEIGHTS)}")
  folder = os.path.join(workdir, "checkpoints" if weights == "latest" else "best")
  if not checkpoint.has_steps(folder):
    hint = "train first" if weights == "latest" else (
        "train with validation first, or use --weights=latest")
    raise CheckpointError(f"{folder}: no checkpoint to {purpose} ({hint})")


def restore(config, workdir: str, weights: str = "latest",
            purpose: str = "use") -> Restored:
  """The model named by `config` with the `weights` of `workdir`."""
  require_checkpoint(workdir, weights, purpose)
  checkpoint.check_saved_model(config, workdir)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  init = builder.make_init(config, model, optimizer, parallel.make_mesh())
  abstract = jax.eval_shape(init, jax.random.PRNGKey(config.seed))
  linen = model.linen_paths(int(config.data.ratio))  # runs saved before NNX
  if weights == "best":
    like = {"params": abstract.ema_params, **abstract.model_state}
    restored = checkpoint.restore_best(workdir, like, linen)
    if restored is None:
      raise CheckpointError(f"{workdir}/best: no exported best model to "
                            f"{purpose} (train with validation first, or use "
                            "--weights=latest)")
    variables, info = restored
    return Restored(model, _on_this_host(variables), int(info["step"]))
  manager = checkpoint.make_manager(workdir, config)
  try:
    state = checkpoint.restore_latest(manager, abstract, linen)
  finally:
    manager.close()
  if state is None:
    raise CheckpointError(f"{workdir}/checkpoints: no checkpoint to {purpose} "
                          "(train first)")
  return Restored(model, _on_this_host({"params": state.ema_params,
                                        **state.model_state}), int(state.step))


def _on_this_host(variables):
  """The restored (replicated) variables on one device of this host: every
  use of them (evaluation, prediction, adaptation) runs per host."""
  return parallel.to_local(variables, parallel.local_mesh(1))
