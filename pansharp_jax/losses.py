"""Training losses (SPEC §3). Every term is returned separately so it can be logged.

`compute_losses(outputs, batch, loss_config)` takes the model's
`(sr_1_4, sr_1_2, full)` and a batch with `gt` (and `ms`, `pan` for the
sensor-consistency terms), and returns `(total, {name: value})`. A term with
weight 0 is not computed. New terms register in `_FULL_RES_TERMS`.
"""

import jax
import jax.numpy as jnp
import numpy as np


def avg_pool2(x):
  """2x2 average pooling of NHWC images (the multi-scale targets)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def l1(pred, target):
  return jnp.mean(jnp.abs(pred - target))


def gradient_loss(pred, target):
  """L1 between horizontal and vertical finite differences."""
  def diffs(x):
    return x[:, 1:, :, :] - x[:, :-1, :, :], x[:, :, 1:, :] - x[:, :, :-1, :]
  (py, px), (ty, tx) = diffs(pred), diffs(target)
  return l1(py, ty) + l1(px, tx)


def _depthwise(x, kernel):
  """'VALID' depthwise 2D correlation of NHWC `x` with one (k, k) kernel."""
  c = x.shape[-1]
  k = jnp.broadcast_to(kernel[:, :, None, None], kernel.shape + (1, c))
  return jax.lax.conv_general_dilated(
      x, k.astype(x.dtype), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  coords = np.arange(size) - (size - 1) / 2
  g = np.exp(-coords**2 / (2 * sigma**2))
  g /= g.sum()
  return np.outer(g, g).astype(np.float32)


def ssim_map(pred, target, data_range=1.0, window=11, sigma=1.5):
  """Windowed Gaussian SSIM per pixel (valid region), per band."""
  w = jnp.asarray(gaussian_window(window, sigma))
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  mu_p, mu_t = _depthwise(pred, w), _depthwise(target, w)
  var_p = _depthwise(pred * pred, w) - mu_p**2
  var_t = _depthwise(target * target, w) - mu_t**2
  cov = _depthwise(pred * target, w) - mu_p * mu_t
  return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
      (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


def ssim_loss(pred, target):
  return 1.0 - jnp.mean(ssim_map(pred, target))


_SOBEL = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)


def edge_loss(pred, target):
  """L1 between Sobel gradient magnitudes."""
  def magnitude(x):
    gx = _depthwise(x, jnp.asarray(_SOBEL))
    gy = _depthwise(x, jnp.asarray(_SOBEL.T))
    return jnp.sqrt(gx**2 + gy**2 + 1e-6)
  return l1(magnitude(pred), magnitude(target))


def fft_loss(pred, target):
  """L1 between 2D FFT amplitudes (orthonormal, so independent of image size)."""
  def amplitude(x):
    return jnp.abs(jnp.fft.rfft2(x, axes=(1, 2), norm="ortho"))
  return l1(amplitude(pred), amplitude(target))


# Terms on the full-resolution output: name -> fn(pred, target).
_FULL_RES_TERMS = {
    "gradient": gradient_loss,
    "ssim": ssim_loss,
    "edge": edge_loss,
    "fft": fft_loss,
}


def compute_losses(outputs, batch, loss_config):
  """Weighted sum of the configured terms and each (unweighted) term."""
  sr_1_4, sr_1_2, full = (o.astype(jnp.float32) for o in outputs)
  gt = batch["gt"]
  gt_1_2 = avg_pool2(gt)
  gt_1_4 = avg_pool2(gt_1_2)
  w_full, w_half, w_quarter = loss_config.scale_weights
  terms = {"l1": (w_full * l1(full, gt) + w_half * l1(sr_1_2, gt_1_2) +
                  w_quarter * l1(sr_1_4, gt_1_4))}
  total = loss_config.l1 * terms["l1"]
  for name, fn in _FULL_RES_TERMS.items():
    weight = loss_config.get(name, 0.0)
    if weight:
      terms[name] = fn(full, gt)
      total = total + weight * terms[name]
  return total, terms
