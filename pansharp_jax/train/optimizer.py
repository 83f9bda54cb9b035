"""The optimizer: AdamW with masked weight decay, clipping, optional
reduce-on-plateau and gradient accumulation (SPEC §4)."""

import jax
import optax

# Selective-scan parameters that must not be pulled towards zero: A = -exp(A_log)
# sets the decay rates and D the skip connection.
_NO_DECAY = frozenset({"A_log", "D"})


def decay_mask(params):
  """True where weight decay applies: kernels and embeddings.

  Off for biases (also `dt_bias`), norm and LayerScale scales, 1-D leaves and
  the selective scan's A_log and D. Names are matched, not only ranks,
  because blocks stacked by `nn.scan` give every leaf a leading layer axis.
  """
  def decays(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    return (leaf.ndim >= 2 and name not in _NO_DECAY and
            not name.endswith(("bias", "scale")))
  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(optim_config, schedule: optax.Schedule):
  """clip -> AdamW(schedule) [-> plateau scale], wrapped in MultiSteps for k > 1.

  `schedule` counts batches (loop steps); the optimizer counts updates, one per
  `grad_accum_steps` batches, so it is stretched by that factor. The learning
  rate is injected as a hyperparameter so the value applied can be logged.
  """
  accum = int(optim_config.grad_accum_steps)
  adamw = optax.inject_hyperparams(optax.adamw, static_args="mask")(
      learning_rate=lambda count: schedule(count * accum),
      b1=optim_config.b1, b2=optim_config.b2,
      weight_decay=optim_config.weight_decay, mask=decay_mask)
  parts = [optax.clip_by_global_norm(optim_config.clip_norm), adamw]
  plateau = optim_config.plateau
  if plateau.enabled:
    parts.append(optax.contrib.reduce_on_plateau(
        factor=plateau.factor, patience=plateau.patience,
        cooldown=plateau.cooldown, accumulation_size=plateau.window,
        min_scale=optim_config.min_lr / optim_config.lr))
  optimizer = optax.chain(*parts)
  if accum > 1:
    optimizer = optax.MultiSteps(optimizer, every_k_schedule=accum)
  return optimizer


def applied_update(optimizer, opt_state):
  """Whether the last `update` changed the params (False mid-accumulation)."""
  if isinstance(optimizer, optax.MultiSteps):
    return optimizer.has_updated(opt_state)
  return True


def update_index(optimizer, opt_state, step):
  """The 0-based index of the update the last `update` made (with
  accumulation one per k batches; otherwise the batch `step`)."""
  if isinstance(optimizer, optax.MultiSteps):
    return opt_state.gradient_step - 1
  return step


def _find(opt_state, state_type):
  """The first sub-state of `state_type` in an optimizer state, or None."""
  is_state = lambda x: isinstance(x, state_type)
  return next((s for s in jax.tree.leaves(opt_state, is_leaf=is_state)
               if is_state(s)), None)


def learning_rate(opt_state):
  """The learning rate of the last update, plateau scale included."""
  lr = _find(opt_state, optax.InjectStatefulHyperparamsState).hyperparams[
      "learning_rate"]
  plateau = _find(opt_state, optax.contrib.ReduceLROnPlateauState)
  return lr if plateau is None else lr * plateau.scale
