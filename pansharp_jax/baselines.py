"""Classical pansharpening baselines, as in the reference toolbox (Vivone).

Every method takes the low-resolution MS (h, w, C) and the PAN (H, W) or
(H, W, 1), with H = ratio h, in sensor units, and returns the fused
(H, W, C) float64 image. All share the signature
`fn(ms, pan, *, ratio, sensor)`; `BASELINES` maps table names to them.

* EXP: the MS upsampled by `interp23tap` (no PAN).
* BT-H: Brovey transform with haze correction (Lolli et al., 2017).
* GS: Gram-Schmidt with the band mean as intensity.
* GSA: Gram-Schmidt adaptive, intensity by regression at low resolution.
* MTF-GLP-FS: MTF-matched generalised Laplacian pyramid, injection gains by
  full-scale regression (Vivone et al., 2018).
* MTF-GLP-HPM: the same pyramid with high-pass modulation.

Where the toolbox low-passes with its generic Gaussian (`LPfilterGauss`) or
a wavelet filter (GSA's `LPfilterPlusDec`), we use the generic MTF filter
(gain 0.3 at Nyquist).
"""

import numpy as np

from pansharp_jax.data import wald

_EPS = np.finfo(np.float64).eps


def _inputs(ms, pan, ratio):
  """float64 MS (h, w, C) and PAN (H, W), checked against each other."""
  ms, pan = np.asarray(ms, np.float64), np.asarray(pan, np.float64)
  if pan.ndim == 3 and pan.shape[-1] == 1:
    pan = pan[..., 0]
  if ms.ndim != 3 or pan.ndim != 2:
    raise ValueError(f"need MS (h, w, C) and PAN (H, W), got {ms.shape} and "
                     f"{pan.shape}")
  if pan.shape != (ratio * ms.shape[0], ratio * ms.shape[1]):
    raise ValueError(f"PAN {pan.shape} is not {ratio}x MS {ms.shape[:2]}")
  return ms, pan


def _generic_lowpass(img, ratio):
  """The toolbox's generic Gaussian low-pass (gain 0.3 at Nyquist)."""
  kernel = wald.mtf_kernels("generic", 1, ratio)[..., 0]
  return wald.mtf_filter(img, kernel)


def _cov(a, b):
  """Covariance of two images over pixels (per band if they have bands)."""
  a = a - a.mean((0, 1))
  b = b - b.mean((0, 1))
  return (a * b).mean((0, 1))


def _regress(target, regressors):
  """Least-squares weights of (..., K) `regressors` that fit `target`."""
  return np.linalg.lstsq(regressors.reshape(-1, regressors.shape[-1]),
                         target.ravel(), rcond=None)[0]


def _cs_fuse(ms_up, intensity, pan_eq):
  """Component substitution: adds g_k (PAN - I), g_k = cov(I, MS_k) / var(I)."""
  gains = _cov(intensity[..., None], ms_up) / _cov(intensity, intensity)
  return ms_up + gains * (pan_eq - intensity)[..., None]


def exp(ms, pan, ratio=4, sensor="generic"):
  """EXP: the MS upsampled by the 23-tap interpolator."""
  del sensor  # shared signature
  ms, _ = _inputs(ms, pan, ratio)
  return wald.interp23tap(ms, ratio)


def brovey(ms, pan, ratio=4, sensor="generic"):
  """BT-H: Brovey transform with haze correction (toolbox `BT_H`).

  Intensity is the regression of the low-passed PAN on the haze-corrected
  upsampled MS (haze = each band's minimum); the PAN is matched to its mean
  and std, then each band is scaled by PAN / intensity.
  """
  del sensor  # shared signature
  ms, pan = _inputs(ms, pan, ratio)
  ms_up = wald.interp23tap(ms, ratio)
  haze = ms_up.min((0, 1))
  pan_lp = _generic_lowpass(pan, ratio)
  intensity = (ms_up - haze) @ _regress(pan_lp, ms_up)
  pan_eq = ((pan - pan_lp.mean()) * intensity.std() / pan_lp.std() +
            intensity.mean())
  return (ms_up - haze) * (pan_eq / (intensity + _EPS))[..., None] + haze


def gs(ms, pan, ratio=4, sensor="generic"):
  """GS: Gram-Schmidt, intensity = mean of the upsampled bands (toolbox `GS`).

  The PAN is matched to the intensity's mean and std; the toolbox's final
  per-band mean equalisation is a no-op here (the injected detail has zero
  mean), so it is left out.
  """
  del sensor  # shared signature
  ms, pan = _inputs(ms, pan, ratio)
  ms_up = wald.interp23tap(ms, ratio)
  intensity = ms_up.mean(-1)
  pan_eq = ((pan - pan.mean()) * intensity.std() / pan.std() +
            intensity.mean())
  return _cs_fuse(ms_up, intensity, pan_eq)


def gsa(ms, pan, ratio=4, sensor="generic"):
  """GSA: Gram-Schmidt adaptive (toolbox `GSA`).

  Intensity weights (with a constant) come from regressing the low-passed,
  decimated, mean-removed PAN on the mean-removed low-resolution MS.
  """
  del sensor  # shared signature
  ms, pan = _inputs(ms, pan, ratio)
  ms_up = wald.interp23tap(ms, ratio)
  pan0 = pan - pan.mean()
  pan_lr = wald.decimate(_generic_lowpass(pan0, ratio), ratio)

  def with_const(a):
    return np.concatenate([a - a.mean((0, 1)), np.ones(a.shape[:2] + (1,))],
                          -1)

  intensity = with_const(ms_up) @ _regress(pan_lr, with_const(ms))
  return _cs_fuse(ms_up, intensity - intensity.mean(), pan0)


def _glp_lowpass(pan_bands, sensor, ratio):
  """PAN copies through each band's MTF, decimated, re-expanded (the GLP)."""
  kernels = wald.mtf_kernels(sensor, pan_bands.shape[-1], ratio)
  lr = wald.decimate(wald.mtf_filter(pan_bands, kernels), ratio)
  return wald.interp23tap(lr, ratio)


def mtf_glp(ms, pan, ratio=4, sensor="generic"):
  """MTF-GLP-FS: detail PAN - PAN_LP injected with full-scale gains.

  g_k = cov(MS_k, PAN) / cov(PAN_LP_k, PAN), as the toolbox's `MTF_GLP_FS`.
  """
  ms, pan = _inputs(ms, pan, ratio)
  ms_up = wald.interp23tap(ms, ratio)
  pan_bands = np.repeat(pan[..., None], ms.shape[-1], -1)
  pan_lp = _glp_lowpass(pan_bands, sensor, ratio)
  gains = _cov(ms_up, pan_bands) / _cov(pan_lp, pan_bands)
  return ms_up + gains * (pan_bands - pan_lp)


def mtf_glp_hpm(ms, pan, ratio=4, sensor="generic"):
  """MTF-GLP-HPM: MS modulated by PAN / PAN_LP (toolbox `MTF_GLP_HPM`).

  The PAN is first matched per band to the MS mean and std (its std taken
  after the generic low-pass, at the MS's resolution); the ratio is clipped
  to [0, 10] as in the toolbox's Python port, against near-zero PAN_LP.
  """
  ms, pan = _inputs(ms, pan, ratio)
  ms_up = wald.interp23tap(ms, ratio)
  pan_bands = ((pan - pan.mean())[..., None] *
               ms_up.std((0, 1)) / _generic_lowpass(pan, ratio).std() +
               ms_up.mean((0, 1)))
  pan_lp = _glp_lowpass(pan_bands, sensor, ratio)
  return ms_up * np.clip(pan_bands / (pan_lp + _EPS), 0, 10)


BASELINES = {
    "EXP": exp,
    "BT-H": brovey,
    "GS": gs,
    "GSA": gsa,
    "MTF-GLP-FS": mtf_glp,
    "MTF-GLP-HPM": mtf_glp_hpm,
}
