"""Training losses (SPEC §3). Every term is returned separately so it can be logged.

`compute_losses(outputs, batch, loss_config, world=..., sensor=...)` takes
the model's outputs, finest last: `(sr_1_4, sr_1_2, full)` of the
pansharpener (multi-scale L1, `loss.scale_weights`, at ratios from
`loss.multiscale_from_ratio` on; below it the full output's alone) or `(full,)` of a
single-scale network (L1 on the full output only), and a batch with `gt` (and `ms`, `pan`
for the sensor-consistency terms; `ms` also gives the ratio: without it the
three L1 terms apply), and returns `(total, {name: value})`. A
term with weight 0 is not computed. New terms register in `_FULL_RES_TERMS`;
the world-model terms (DSC, WAC-X) in `_WORLD_TERMS`, switched on by the
model's world options (`models.world.WorldOptions`), the DSC term filtered
with the MTF of `sensor`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from pansharp_jax.data import wald


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


def _band_matrix(taps: np.ndarray, size: int) -> np.ndarray:
  """(size - k + 1, size) matrix whose product is the 'VALID' correlation
  of a length-`size` signal with the k `taps`."""
  k = len(taps)
  matrix = np.zeros((size - k + 1, size), np.float32)
  for i in range(size - k + 1):
    matrix[i, i:i + k] = taps
  return matrix


def _separable(x, col_taps, row_taps):
  """'VALID' 2D correlation of each channel of NHWC `x` with the kernel
  outer(col_taps, row_taps), as two matrix products: on XLA:CPU these run
  many times faster than (depthwise) convolutions, forward and backward."""
  cols = jnp.asarray(_band_matrix(np.asarray(col_taps), x.shape[1]), x.dtype)
  rows = jnp.asarray(_band_matrix(np.asarray(row_taps), x.shape[2]), x.dtype)
  return jnp.einsum("ph,bhwc,qw->bpqc", cols, x, rows)


def gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  """Normalised Gaussian taps; the 2D SSIM window is their outer product."""
  coords = np.arange(size) - (size - 1) / 2
  g = np.exp(-coords**2 / (2 * sigma**2))
  return (g / g.sum()).astype(np.float32)


def ssim_map(pred, target, data_range=1.0, window=11, sigma=1.5):
  """Windowed Gaussian SSIM per pixel (valid region), per band.

  The five local moments share one separable blur (rows, then columns):
  2 x 11 taps per pixel instead of 121, the largest cost of the loss.
  """
  g = gaussian_1d(window, sigma)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  moments = jnp.concatenate(
      [pred, target, pred * pred, target * target, pred * target], axis=-1)
  blurred = _separable(moments, g, g)
  mu_p, mu_t, e_pp, e_tt, e_pt = jnp.split(blurred, 5, axis=-1)
  var_p, var_t = e_pp - mu_p**2, e_tt - mu_t**2
  cov = e_pt - mu_p * mu_t
  return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
      (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


def ssim_loss(pred, target):
  return 1.0 - jnp.mean(ssim_map(pred, target))


# Sobel: smoothing [1, 2, 1] across, difference [1, 0, -1] along.
_SMOOTH, _DIFF = np.array([1, 2, 1], np.float32), np.array([1, 0, -1], np.float32)


def edge_loss(pred, target):
  """L1 between Sobel gradient magnitudes."""
  def magnitude(x):
    gx = _separable(x, _SMOOTH, _DIFF)
    gy = _separable(x, _DIFF, _SMOOTH)
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


def mtf_blur(x, gains, ratio):
  """Gaussian MTF low-pass of NHWC `x`: gain `gains` (per band) at the MS
  Nyquist frequency 1 / (2 ratio), applied by FFT with reflect padding."""
  pad = 3 * ratio  # > 3 sigma for gains down to 0.1
  _, height, width, _ = x.shape
  x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  fy = jnp.fft.fftfreq(height + 2 * pad)[:, None]
  fx = jnp.fft.rfftfreq(width + 2 * pad)[None, :]
  # Gaussian transfer function with H(f_nyquist) = gain: gain ** (f / f_n)^2.
  response = jnp.asarray(gains, jnp.float32) ** (
      ((2 * ratio) ** 2 * (fy**2 + fx**2))[..., None])
  spectrum = jnp.fft.rfft2(x, axes=(1, 2)) * response
  y = jnp.fft.irfft2(spectrum, s=x.shape[1:3], axes=(1, 2))
  return y[:, pad:pad + height, pad:pad + width]


def _decimate(x, ratio):
  """Every ratio-th pixel from offset ratio // 2 (Wald's protocol)."""
  return x[:, ratio // 2::ratio, ratio // 2::ratio]


def _masked_mean(values, weights):
  """Mean of `values` weighted by 0/1 `weights` (broadcast to them); 0 when
  no weight is set."""
  weights = jnp.broadcast_to(weights, values.shape)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def spectral_consistency_loss(pred, ms, sensor="generic", *, valid=None):
  """The prediction through the sensor's MS MTFs, decimated, against the
  observed MS (L1): what the sensor would have seen of it must be the MS.

  `valid` (B, H, W, 1) at PAN size, 1 where a pixel holds data: an MS pixel
  counts only where its whole ratio x ratio footprint is valid.
  """
  ratio = pred.shape[1] // ms.shape[1]
  blurred = mtf_blur(pred, wald.ms_gains(sensor, ms.shape[-1]), ratio)
  error = jnp.abs(_decimate(blurred, ratio) - ms)
  if valid is None:
    return jnp.mean(error)
  b, h, w, _ = ms.shape
  footprint = valid.reshape(b, h, ratio, w, ratio, 1).min(axis=(2, 4))
  return _masked_mean(error, footprint)


# A floor on sqrt(var_a var_b) in [0, 1] units: 1e-4 of the variance of one
# 16-bit DN step in a 4 x 4 window, so it only keeps flat windows finite.
_CORRELATION_FLOOR = 1e-12


def _box_mean(x, window: int):
  """Mean of NHWC `x` in every window x window neighbourhood ('VALID')."""
  box = np.full(window, 1.0 / window, np.float32)
  return _separable(x, box, box)


def local_correlation(a, b, window: int):
  """Pearson correlation of NHWC `a` and `b` (same shape) in every
  window x window neighbourhood ('VALID'), per band; 0 in flat windows.

  Each image is centred on its own mean first, so the float32 moments of a
  window do not lose its variance to the square of its mean.
  """
  a = a - jnp.mean(a, axis=(1, 2), keepdims=True)
  b = b - jnp.mean(b, axis=(1, 2), keepdims=True)
  ma, mb = _box_mean(a, window), _box_mean(b, window)
  cov = _box_mean(a * b, window) - ma * mb
  var_a = jnp.maximum(_box_mean(a * a, window) - ma**2, 0.0)
  var_b = jnp.maximum(_box_mean(b * b, window) - mb**2, 0.0)
  scale = jnp.sqrt(jnp.maximum(var_a * var_b, _CORRELATION_FLOOR**2))
  return jnp.clip(cov / scale, -1.0, 1.0)


def spatial_consistency_loss(pred, pan, lms, ratio: int, sensor="generic", *,
                             ceiling_window: int = 16, valid=None):
  """Z-PNN's spatial (structural) term.

  rho: the local correlation of each output band with the PAN in windows of
  `ratio` px; rho_max: that of the upsampled MS band with the MTF-low-passed
  PAN in windows of `ceiling_window` px (Z-PNN: 16, a semi-width of 8), the
  two windows centred on the same point. The term is the mean of 1 - rho
  where rho < rho_max and 0 elsewhere: details are pushed only as far as
  the band and the PAN really share them, and a band that already follows
  the PAN that far costs nothing. `valid` (B, H, W, 1): positions whose
  rho_max window holds an invalid pixel are left out.
  """
  pan_b = jnp.broadcast_to(pan, pred.shape)
  pan_lp = jnp.broadcast_to(mtf_blur(pan, [wald.pan_gain(sensor)], ratio), pred.shape)
  ceiling = jax.lax.stop_gradient(local_correlation(lms, pan_lp, ceiling_window))
  rows, cols = ceiling.shape[1:3]
  offset = (ceiling_window - ratio) // 2
  rho = local_correlation(pred, pan_b, ratio)[:, offset:offset + rows, offset:offset + cols]
  term = jnp.where(rho < ceiling, 1.0 - rho, 0.0)
  if valid is None:
    return jnp.mean(term)
  inside = _box_mean(valid.astype(jnp.float32), ceiling_window)
  return _masked_mean(term, inside > 1.0 - 0.5 / ceiling_window**2)


def dsc_loss(pred, pan, ms, sensor="generic"):
  """Sensor consistency (DSC): HRMS re-observed by the sensor matches the data.

  PAN: the PAN-from-MS spectral weights (and offset) are fitted by least
  squares between the observed MS and the MTF-degraded PAN at MS resolution;
  the synthesized PAN (weights applied to the prediction) and the observed
  PAN, both through the PAN MTF, are compared by L1. MS: the prediction
  through the MS MTFs, decimated (offset ratio // 2), against the observed MS.
  """
  ratio = pan.shape[1] // ms.shape[1]
  batch, _, _, bands = ms.shape
  pan_gain = wald.pan_gain(sensor)

  pan_blurred = mtf_blur(pan, [pan_gain], ratio)
  design = jnp.concatenate(
      [ms, jnp.ones(ms.shape[:-1] + (1,), ms.dtype)], -1).reshape(
          batch, -1, bands + 1)
  target = _decimate(pan_blurred, ratio).reshape(batch, -1, 1)
  gram = jnp.einsum("bnc,bnd->bcd", design, design) + 1e-6 * jnp.eye(bands + 1)
  weights = jax.lax.stop_gradient(jnp.linalg.solve(
      gram, jnp.einsum("bnc,bnd->bcd", design, target)))  # (B, C + 1, 1)
  pan_synth = (jnp.einsum("bhwc,bcd->bhwd", pred, weights[:, :bands])
               + weights[:, None, None, bands])
  pan_term = l1(mtf_blur(pan_synth, [pan_gain], ratio), pan_blurred)
  return pan_term + spectral_consistency_loss(pred, ms, sensor)


def _high_pass_amplitude(x, cutoff):
  """Per-band FFT amplitude above `cutoff` (a fraction of Nyquist), zero
  below, normalised to unit mean so bands of any contrast compare."""
  amplitude = jnp.abs(jnp.fft.rfft2(x, axes=(1, 2), norm="ortho"))
  fy = jnp.fft.fftfreq(x.shape[1])[:, None]
  fx = jnp.fft.rfftfreq(x.shape[2])[None, :]
  mask = (jnp.sqrt(fy**2 + fx**2) / 0.5 > cutoff)[..., None]
  amplitude = amplitude * mask
  return amplitude / (jnp.mean(amplitude, axis=(1, 2), keepdims=True) + 1e-8)


def wacx_loss(pred, pan, cutoff=0.1, gate_weight=0.5):
  """Wavelength-agnostic cross-band consistency (WAC-X).

  Cross-band: each band's normalised high-frequency amplitude spectrum
  against the mean over bands (the bands share the scene's structure).
  PAN gate: the band-mean intensity's normalised high-frequency amplitude
  against PAN's, weighted by PAN's relative high-frequency energy.
  """
  bands = _high_pass_amplitude(pred, cutoff)
  cross_band = l1(bands, jnp.mean(bands, axis=-1, keepdims=True))
  pan_amplitude = _high_pass_amplitude(pan, cutoff)
  gate = pan_amplitude / (
      jnp.max(pan_amplitude, axis=(1, 2), keepdims=True) + 1e-8)
  intensity = _high_pass_amplitude(jnp.mean(pred, -1, keepdims=True), cutoff)
  pan_gate = jnp.mean(gate * jnp.abs(intensity - pan_amplitude))
  return cross_band + gate_weight * pan_gate


# World-model terms: name -> fn(full output, batch, loss_config).
_WORLD_TERMS = {
    "dsc": lambda full, batch, sensor: dsc_loss(full, batch["pan"], batch["ms"],
                                                sensor),
    "wacx": lambda full, batch, sensor: wacx_loss(full, batch["pan"]),
}


def compute_losses(outputs, batch, loss_config, *, world=None,
                   sensor: str = "generic"):
  """Weighted sum of the configured terms and each (unweighted) term.

  `world`: the model's WorldOptions (its `dsc` and `wacx` switches; None:
  no world-model terms); `sensor`: the MTF filters of the DSC term.
  """
  if len(outputs) not in (1, 3):
    raise ValueError(f"outputs: (full,) or (sr_1_4, sr_1_2, full), got "
                     f"{len(outputs)} arrays")
  *coarse, full = (o.astype(jnp.float32) for o in outputs)
  gt = batch["gt"]
  w_full, w_half, w_quarter = loss_config.scale_weights
  if "ms" in batch and (gt.shape[1] // batch["ms"].shape[1] <
                        loss_config.get("multiscale_from_ratio", 2)):
    # Measured at ratio 2: the 1/2 and 1/4 terms (outputs at and below the
    # MS's resolution) cost ~4% ERGAS of the full output (docs/recipes.md).
    w_half = w_quarter = 0.0
  terms = {"l1": w_full * l1(full, gt)}
  if coarse and (w_half or w_quarter):
    sr_1_4, sr_1_2 = coarse
    gt_1_2 = avg_pool2(gt)
    terms["l1"] += (w_half * l1(sr_1_2, gt_1_2) +
                    w_quarter * l1(sr_1_4, avg_pool2(gt_1_2)))
  total = loss_config.l1 * terms["l1"]
  for name, fn in _FULL_RES_TERMS.items():
    weight = loss_config.get(name, 0.0)
    if weight:
      terms[name] = fn(full, gt)
      total = total + weight * terms[name]
  for name, fn in _WORLD_TERMS.items():
    weight = loss_config.get(name, 0.0)
    if weight and world is not None and getattr(world, name):
      terms[name] = fn(full, batch, sensor)
      total = total + weight * terms[name]
  return total, terms
