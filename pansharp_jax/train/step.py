"""The training step and the evaluation forward pass (pure functions, jitted by builder)."""

import functools

import jax
import jax.numpy as jnp
import optax

from pansharp_jax import losses
from pansharp_jax.train import optimizer as optimizer_lib
from pansharp_jax.train.state import TrainState


def batch_psnr(pred, target):
  """Mean PSNR (data range 1) over a batch, in dB."""
  mse = jnp.mean((pred - target) ** 2, axis=(1, 2, 3))
  return jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-12)))


def ema_update(ema, params, decay, step):
  """One EMA step; the decay ramps up early so the random init fades fast."""
  decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def train_step(state: TrainState, batch, *, model, optimizer, config):
  """One batch: forward, losses, backward, update, EMA; returns (state, metrics).

  A non-finite loss or gradient leaves params, optimizer, EMA and model state
  untouched; the step still counts (its batch is consumed) and so does the
  `nonfinite` streak, which the loop turns into a stop.
  """
  step_rng = jax.random.fold_in(state.rng, state.step)
  gumbel_rng, dropout_rng = jax.random.split(step_rng)
  mutable = list(state.model_state)

  def loss_fn(params):
    outputs, model_state = model.apply(
        {"params": params, **state.model_state},
        batch["ms"], batch["pan"], batch["lms"], train=True,
        rngs={"gumbel": gumbel_rng, "dropout": dropout_rng}, mutable=mutable)
    total, terms = losses.compute_losses(outputs, batch, config.loss,
                                         world=model.world,
                                         sensor=config.data.sensor)
    return total, (terms, model_state, outputs[-1])

  (total, (terms, model_state, full)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)

  updates, opt_state = optimizer.update(
      grads, state.opt_state, state.params, value=total)
  params = optax.apply_updates(state.params, updates)
  # With accumulation the params only move every k batches; so does the EMA,
  # whose decay ramps up with the updates made, not the batches seen.
  ema_params = jax.tree.map(
      functools.partial(jnp.where, optimizer_lib.applied_update(optimizer, opt_state)),
      ema_update(state.ema_params, params, config.optim.ema_decay,
                 optimizer_lib.update_index(optimizer, opt_state, state.step)),
      state.ema_params)
  updated = state.replace(params=params, ema_params=ema_params,
                          opt_state=opt_state, model_state=dict(model_state))
  new_state = jax.tree.map(functools.partial(jnp.where, finite), updated, state)
  new_state = new_state.replace(
      step=state.step + 1,
      nonfinite=jnp.where(finite, 0, state.nonfinite + 1).astype(jnp.int32))

  metrics = {"loss": total, **{f"loss_{k}": v for k, v in terms.items()},
             "psnr": batch_psnr(full.astype(jnp.float32), batch["gt"]),
             "grad_norm": grad_norm,
             "lr": optimizer_lib.learning_rate(new_state.opt_state),
             "skipped": 1 - finite.astype(jnp.int32),
             "nonfinite": new_state.nonfinite}
  return new_state, metrics


def make_train_step(model, optimizer, config):
  return functools.partial(train_step, model=model, optimizer=optimizer,
                           config=config)


def predict_fn(variables, batch, *, model):
  """Full-resolution output of the eval-mode model, clipped to [0, 1];
  `variables` are flax variables ({"params": ..., **model_state})."""
  outputs = model.apply(variables, batch["ms"], batch["pan"], batch.get("lms"),
                        train=False)
  return jnp.clip(outputs[-1].astype(jnp.float32), 0.0, 1.0)
