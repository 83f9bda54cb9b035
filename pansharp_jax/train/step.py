"""The jitted training step and the evaluation forward pass."""

import functools

import jax
import jax.numpy as jnp
import optax

from pansharp_jax import losses
from pansharp_jax.train.state import TrainState


def batch_psnr(pred, target):
  """Mean PSNR (data range 1) over a batch, in dB."""
  mse = jnp.mean((pred - target) ** 2, axis=(1, 2, 3))
  return jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-12)))


def _ema_update(ema, params, decay, step):
  # Ramp the decay up early so the EMA is not dominated by the random init.
  decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def train_step(state: TrainState, batch, *, model, optimizer, schedule, config):
  """One optimisation step; returns the new state and scalar metrics."""
  step_rng = jax.random.fold_in(state.rng, state.step)
  gumbel_rng, dropout_rng = jax.random.split(step_rng)
  mutable = list(state.model_state.keys())

  def loss_fn(params):
    outputs, new_model_state = model.apply(
        {"params": params, **state.model_state},
        batch["ms"], batch["pan"], batch["lms"], train=True,
        rngs={"gumbel": gumbel_rng, "dropout": dropout_rng}, mutable=mutable)
    total, terms = losses.compute_losses(outputs, batch, config.loss)
    return total, (terms, new_model_state, outputs[-1])

  (total, (terms, model_state, full)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema_params = _ema_update(state.ema_params, params, config.optim.ema_decay,
                           state.step)
  metrics = {"loss": total, **{f"loss_{k}": v for k, v in terms.items()},
             "psnr": batch_psnr(full, batch["gt"]),
             "grad_norm": optax.global_norm(grads),
             "lr": schedule(state.step)}
  new_state = state.replace(step=state.step + 1, params=params,
                            ema_params=ema_params, opt_state=opt_state,
                            model_state=dict(model_state))
  return new_state, metrics


def make_train_step(model, optimizer, schedule, config):
  return functools.partial(train_step, model=model, optimizer=optimizer,
                           schedule=schedule, config=config)


def predict_fn(params, model_state, batch, *, model):
  """Full-resolution output of the eval-mode model, clipped to [0, 1]."""
  outputs = model.apply({"params": params, **model_state}, batch["ms"],
                        batch["pan"], batch.get("lms"), train=False)
  return jnp.clip(outputs[-1].astype(jnp.float32), 0.0, 1.0)
