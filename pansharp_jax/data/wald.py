"""Wald's protocol: sensor MTF filters, the 23-tap interpolator, degradation.

Conventions follow the reference pansharpening toolbox (Vivone et al.; see
third_party/README.md for the sources of the MTF gains):

* An MTF filter is a 41x41 FIR kernel whose frequency response is a Gaussian
  with gain GNyq at the MS Nyquist frequency, designed by frequency sampling
  and a Kaiser window (beta 0.5). Like the toolbox, the Gaussian puts GNyq at
  frequency sample (taps - 1) / (2 ratio) of the taps-point grid, i.e. at
  (taps - 1) / taps of the true Nyquist 1 / (2 ratio) cycles per pixel, and
  the kernel is not renormalised (DC gain ~0.998). Images are filtered with
  replicate padding.
* Decimation keeps pixels ratio//2, ratio//2 + ratio, ... (MATLAB's
  `imresize(..., 1/ratio, 'nearest')`).
* `interp23tap` doubles the size log2(ratio) times with a 23-tap half-band
  Lagrange interpolator and circular boundaries; LR pixel i lands on HR pixel
  ratio * i + ratio // 2, so `interp23tap(lr, 4)[2::4, 2::4] == lr` exactly.
  The taps are computed; the toolbox's printed decimals match them to 2e-10.

Arrays are (H, W, C) or (H, W); nothing here knows about models.
"""

import numpy as np
from scipy import ndimage
from scipy import signal

# MS gains at Nyquist, per band in the sensor's band order.
_MS_GNYQ = {
    "qb": (0.34, 0.32, 0.30, 0.22),
    "ikonos": (0.26, 0.28, 0.29, 0.28),
    "geoeye1": (0.23,) * 4,
    "wv2": (0.35,) * 7 + (0.27,),
    "wv3": (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315),
}
_PAN_GNYQ = {"qb": 0.15, "ikonos": 0.17, "geoeye1": 0.16, "wv2": 0.11,
             "wv3": 0.14}
# Sensors without a published table (GF-2 as in PanCollection) and the
# generic case: 0.3 for every MS band, the toolbox's 'none' 0.15 for PAN.
_FALLBACK_SENSORS = ("gf2", "generic", "none")
_FALLBACK_MS_GNYQ = 0.3
_FALLBACK_PAN_GNYQ = 0.15

SENSORS = tuple(_MS_GNYQ) + _FALLBACK_SENSORS


def _sensor_key(sensor: str) -> str:
  key = str(sensor).lower()
  if key not in SENSORS:
    raise ValueError(f"unknown sensor {sensor!r}; known: {', '.join(SENSORS)}")
  return key


def ms_gains(sensor: str, nbands: int) -> np.ndarray:
  """MTF gains at Nyquist of the `nbands` MS bands of `sensor`."""
  key = _sensor_key(sensor)
  if key in _FALLBACK_SENSORS:
    return np.full(nbands, _FALLBACK_MS_GNYQ)
  gains = np.asarray(_MS_GNYQ[key])
  if len(gains) != nbands:
    raise ValueError(f"sensor {sensor!r} has {len(gains)} MS bands, "
                     f"got {nbands}")
  return gains


def pan_gain(sensor: str) -> float:
  """MTF gain at Nyquist of the PAN band of `sensor`."""
  return _PAN_GNYQ.get(_sensor_key(sensor), _FALLBACK_PAN_GNYQ)


def _mtf_kernel(gnyq: float, ratio: int, taps: int) -> np.ndarray:
  """One (taps, taps) Gaussian MTF kernel, Kaiser-windowed (toolbox design)."""
  offsets = np.arange(taps) - (taps - 1) / 2
  # Std (in frequency samples) that puts gain `gnyq` at (taps-1)/(2 ratio).
  alpha = (taps - 1) / (2 * ratio) / np.sqrt(-2 * np.log(gnyq))
  response_1d = np.exp(-0.5 * (offsets / alpha) ** 2)
  response = np.outer(response_1d, response_1d)  # peak 1 at DC
  # Frequency sampling: the centred response's inverse DFT, re-centred.
  kernel = np.real(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(response))))
  # Circularly symmetric window from the 1-D Kaiser (Huang's method).
  radius = np.hypot(*np.meshgrid(offsets, offsets)) / ((taps - 1) / 2)
  window = np.interp(radius, offsets / ((taps - 1) / 2), np.kaiser(taps, 0.5))
  window[radius > 1] = 0
  return kernel * window


def mtf_kernels(sensor: str, nbands: int, ratio: int = 4,
                taps: int = 41) -> np.ndarray:
  """(taps, taps, nbands) MTF-matched low-pass kernels of the MS bands."""
  return np.stack([_mtf_kernel(g, ratio, taps)
                   for g in ms_gains(sensor, nbands)], -1)


def mtf_pan_kernel(sensor: str, ratio: int = 4, taps: int = 41) -> np.ndarray:
  """(taps, taps) MTF-matched low-pass kernel of the PAN band."""
  return _mtf_kernel(pan_gain(sensor), ratio, taps)


def mtf_filter(img: np.ndarray, kernels: np.ndarray) -> np.ndarray:
  """Filters each band of (H, W, C) `img` with (t, t, C) `kernels`.

  A 2-D image takes a 2-D kernel. Correlation (MATLAB `imfilter`) with
  replicate padding, computed by FFT: the kernels are not separable.
  """
  img = np.asarray(img, np.float64)
  two_d = img.ndim == 2
  if two_d:
    img, kernels = img[..., None], kernels[..., None]
  if kernels.shape[-1] != img.shape[-1]:
    raise ValueError(f"{kernels.shape[-1]} kernels for {img.shape[-1]} bands")
  ph, pw = kernels.shape[0] // 2, kernels.shape[1] // 2
  padded = np.pad(img, ((ph, ph), (pw, pw), (0, 0)), mode="edge")
  out = signal.fftconvolve(padded, kernels[::-1, ::-1], mode="valid",
                           axes=(0, 1))
  return out[..., 0] if two_d else out


def decimate(img: np.ndarray, ratio: int) -> np.ndarray:
  """Keeps every `ratio`-th pixel from offset ratio // 2 (Wald's protocol)."""
  return img[ratio // 2::ratio, ratio // 2::ratio]


def _halfband_taps(points: int = 12) -> np.ndarray:
  """The toolbox's 23-tap interpolator: `points`-point Lagrange weights.

  Odd taps are the weights that interpolate the midpoint between samples
  from the `points` nearest ones; even taps are 0 except the centre (1), so
  existing samples pass through unchanged.
  """
  nodes = np.arange(points) - (points - 1) / 2  # +-0.5, +-1.5, ...
  weights = [np.prod(-np.delete(nodes, k) / (nodes[k] - np.delete(nodes, k)))
             for k in range(points)]
  taps = np.zeros(2 * points - 1)
  taps[::2] = weights
  taps[points - 1] = 1.0
  return taps


def interp23tap(img: np.ndarray, ratio: int) -> np.ndarray:
  """Upsamples (h, w, C) or (h, w) `img` by `ratio` (a power of 2)."""
  if ratio < 1 or ratio & (ratio - 1):
    raise ValueError(f"interp23tap needs a power-of-2 ratio, got {ratio}")
  img = np.asarray(img, np.float64)
  taps = _halfband_taps()
  for step in range(int(np.log2(ratio))):
    up = np.zeros((2 * img.shape[0], 2 * img.shape[1]) + img.shape[2:])
    # The first doubling shifts by one pixel, the later ones by none: LR
    # pixel i ends at ratio * i + ratio // 2.
    offset = 1 if step == 0 else 0
    up[offset::2, offset::2] = img
    for axis in (0, 1):
      up = ndimage.correlate1d(up, taps, axis=axis, mode="wrap")
    img = up
  return img


def _cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel (a = -0.5), as MATLAB's 'bicubic'."""
  x = np.abs(x)
  return np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1,
                  np.where(x < 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0))


def bicubic_downsample(img: np.ndarray, ratio: int) -> np.ndarray:
  """MATLAB's `imresize(img, 1/ratio)`: antialiased bicubic, symmetric edges.

  Output pixel i is centred on input coordinate ratio * i + (ratio - 1) / 2
  and averages the input with the cubic kernel stretched by `ratio`.
  """
  img = np.asarray(img, np.float64)
  centre = (ratio - 1) / 2
  first = int(np.floor(centre - 2 * ratio)) + 1
  offsets = np.arange(first, int(np.ceil(centre + 2 * ratio)))
  weights = _cubic((offsets - centre) / ratio)
  weights /= weights.sum()
  pad = (-first, offsets[-1] - (ratio - 1))
  for axis in (0, 1):
    widths = [(0, 0)] * img.ndim
    widths[axis] = pad
    padded = np.pad(img, widths, mode="symmetric")
    n_out = img.shape[axis] // ratio
    # Output i reads padded[ratio * i + k] * weights[k], k over the taps.
    img = sum(w * np.take(padded, ratio * np.arange(n_out) + k, axis=axis)
              for k, w in enumerate(weights))
  return img


def wald_degrade(ms: np.ndarray, pan: np.ndarray, sensor: str,
                 ratio: int = 4) -> dict[str, np.ndarray]:
  """Reduced-resolution triple from full-resolution MS (H, W, C) and PAN.

  PAN is (ratio H, ratio W) or (ratio H, ratio W, 1). Both are low-passed by
  their sensor MTF filters and decimated; the input MS becomes `gt`, `lms`
  is the degraded MS upsampled back by `interp23tap`. Returns
  `{gt, ms, lms, pan}` in the input's float dtype (float32 at least).
  """
  ms, pan = np.asarray(ms), np.asarray(pan)
  if ms.ndim != 3:
    raise ValueError(f"MS must be (H, W, C), got shape {ms.shape}")
  h, w, c = ms.shape
  if h % ratio or w % ratio:
    raise ValueError(f"MS size {h}x{w} is not a multiple of ratio {ratio}")
  if pan.shape[:2] != (ratio * h, ratio * w):
    raise ValueError(f"PAN shape {pan.shape} is not {ratio}x MS {ms.shape}")
  dtype = np.result_type(ms.dtype, np.float32)
  ms_lr = decimate(mtf_filter(ms, mtf_kernels(sensor, c, ratio)), ratio)
  pan_2d = pan.reshape(pan.shape[:2])
  pan_lr = decimate(mtf_filter(pan_2d, mtf_pan_kernel(sensor, ratio)), ratio)
  return {"gt": ms.astype(dtype),
          "ms": ms_lr.astype(dtype),
          "lms": interp23tap(ms_lr, ratio).astype(dtype),
          "pan": pan_lr.reshape((h, w) + pan.shape[2:]).astype(dtype)}
