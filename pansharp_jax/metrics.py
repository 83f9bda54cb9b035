"""Pansharpening quality metrics, as in the reference toolbox (Vivone et al.).

Images are (H, W, C) numpy arrays in sensor units (DN); every metric returns
a Python float. Reduced resolution (a GT exists): PSNR, SSIM, SAM, ERGAS,
Q (UIQI), Q2n and SCC. Full resolution (no GT): D_lambda, D_s, QNR and
Khan's D_lambda / HQNR. Conventions are listed in DESIGN.md ("Metric
conventions"); each function's docstring says what it reproduces.
"""

import numpy as np
from scipy import ndimage

from pansharp_jax.data import wald

_EPS = np.finfo(np.float64).eps  # MATLAB's `eps`
# Cheap metrics of the in-loop validation; config.best_metric picks from them.
QUICK_METRICS = ("psnr", "ssim", "sam", "ergas")


def _pair(ref, x):
  """Both images as float64 (H, W, C), checked to have the same shape."""
  ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
  if ref.shape != x.shape:
    raise ValueError(f"shapes differ: {ref.shape} vs {x.shape}")
  if ref.ndim == 2:
    ref, x = ref[..., None], x[..., None]
  if ref.ndim != 3:
    raise ValueError(f"expected (H, W, C) images, got shape {ref.shape}")
  return ref, x


def _require_window(metric, image, window):
  """Raises unless (H, W, ...) `image` holds one `window` x `window` window.

  Wang's reference codes (`ssim_index`, `img_qi`) return -Inf for smaller
  images; an error names the problem instead of a -Inf/NaN in a report.
  """
  if min(image.shape[:2]) < window:
    raise ValueError(f"{metric}: a {image.shape[0]}x{image.shape[1]} image is "
                     f"smaller than its {window}x{window} window")


def _planes(a):
  """(H, W, C) -> contiguous (C, H, W), where filtering runs much faster."""
  return np.ascontiguousarray(np.moveaxis(a, -1, 0))


def psnr(ref, x, data_range: float) -> float:
  """PSNR in dB over all pixels and bands (inf when x == ref)."""
  ref, x = _pair(ref, x)
  mse = np.mean((ref - x) ** 2)
  return float("inf") if mse == 0 else float(
      10 * np.log10(data_range**2 / mse))


def ssim(ref, x, data_range: float) -> float:
  """Mean SSIM over bands: 11x11 Gaussian window (sigma 1.5), K = (.01, .03).

  Wang et al.'s definition with population statistics; the 5-pixel border
  whose window leaves the image is excluded. Images smaller than the window
  are a ValueError (Wang's `ssim_index` returns -Inf for them).
  """
  ref, x = _pair(ref, x)
  _require_window("ssim", ref, 11)
  ref, x = _planes(ref), _planes(x)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

  def blur(a):  # truncate 3.5 sigma -> radius 5 -> 11 taps
    return ndimage.gaussian_filter(a, sigma=(0, 1.5, 1.5), truncate=3.5,
                                   mode="reflect")

  mu_r, mu_x = blur(ref), blur(x)
  var_r = blur(ref * ref) - mu_r**2
  var_x = blur(x * x) - mu_x**2
  cov = blur(ref * x) - mu_r * mu_x
  ssim_map = ((2 * mu_r * mu_x + c1) * (2 * cov + c2) /
              ((mu_r**2 + mu_x**2 + c1) * (var_r + var_x + c2)))
  return float(ssim_map[:, 5:-5, 5:-5].mean())


def sam(ref, x) -> float:
  """Mean spectral angle in degrees, skipping pixels where a vector is 0.

  As the toolbox's `SAM`, which drops those pixels; where that leaves none
  the toolbox divides 0 by 0 (NaN), and this raises a ValueError instead.
  """
  ref, x = _pair(ref, x)
  dot = np.sum(ref * x, -1)
  norms = np.sqrt(np.sum(ref * ref, -1) * np.sum(x * x, -1))
  valid = norms > 0
  if not valid.any():
    raise ValueError("sam: every pixel has a zero spectral vector in the "
                     "reference or the image, so no angle is defined")
  cos = np.clip(dot[valid] / norms[valid], -1.0, 1.0)
  return float(np.degrees(np.mean(np.arccos(cos))))


def ergas(ref, x, ratio: int = 4) -> float:
  """100 / ratio * sqrt(mean over bands of MSE_k / mean(ref_k)^2).

  The toolbox's `ERGAS` divides by each reference band's mean unguarded
  (Inf or NaN for a zero-mean band); that relative error is undefined, so
  such a band is a ValueError naming it.
  """
  ref, x = _pair(ref, x)
  means = ref.mean((0, 1))
  zero = np.flatnonzero(means == 0)
  if zero.size:
    raise ValueError(f"ergas: reference band {int(zero[0])} has mean 0, so "
                     "its relative error is undefined")
  mse = np.mean((ref - x) ** 2, axis=(0, 1))
  return float(100 / ratio * np.sqrt(np.mean(mse / means**2)))


def _uiqi(x, y, block: int, step: int) -> np.ndarray:
  """UIQI of every block x block window of x and y, windows `step` apart.

  x, y: (..., H, W) float64 of the same shape; returns (..., h', w').
  Window means are running sums (scipy's uniform filter) of the images minus
  their rounded means, which keeps them small (and exact for integer DN).
  Windows where the index is 0/0 follow Wang & Bovik's `img_qi`: two flat
  windows score 2 mx my / (mx^2 + my^2), and 1 if both are also 0.
  """
  first = block // 2  # the filter centres window [i - first, i - first + block)
  end = first - block + 1 or None

  def window_means(a):
    h, w = a.shape[-2:]
    if step == block and not (h % block or w % block):  # distinct tiles: block means
      return a.reshape(a.shape[:-2] + (h // block, block, w // block, block)).mean((-3, -1))
    for axis in (-2, -1):
      a = ndimage.uniform_filter1d(a, block, axis=axis)
    return a[..., first:end:step, first:end:step]

  cx = np.round(x.mean((-2, -1), keepdims=True))
  cy = np.round(y.mean((-2, -1), keepdims=True))
  x, y = x - cx, y - cy
  mx, my = window_means(x), window_means(y)
  var_x = window_means(x * x) - mx**2
  var_y = window_means(y * y) - my**2
  cov = window_means(x * y) - mx * my
  mx, my = mx + cx, my + cy

  var_sum, mean_sq = var_x + var_y, mx**2 + my**2
  with np.errstate(divide="ignore", invalid="ignore"):
    q = np.where(var_sum * mean_sq != 0,
                 4 * cov * mx * my / (var_sum * mean_sq), 1.0)
    flat = (var_sum == 0) & (mean_sq != 0)
    return np.where(flat, 2 * mx * my / mean_sq, q)


def q_index(ref, x, block: int = 32) -> float:
  """Mean over bands of the UIQI averaged over sliding block x block windows.

  Images smaller than a window are a ValueError (`img_qi` returns -Inf).
  """
  ref, x = _pair(ref, x)
  _require_window("q", ref, block)
  ref, x = _planes(ref), _planes(x)
  return float(_uiqi(ref, x, block, 1).mean())


def _conj(v):
  """Hypercomplex conjugate along the last axis."""
  return np.concatenate([v[..., :1], -v[..., 1:]], -1)


def _hc_mul(a, b):
  """Cayley-Dickson product along the last axis (length a power of 2).

  Written as the toolbox's `onion_mult`: for halves a = (a1, a2) and
  b = (b1, b2), a b = (a1 b1 - b2* a2, a1* b2* + b1 a2*). With 2 components
  this is complex multiplication; with 4 it equals the quaternion product up
  to conjugating the second half, which keeps every modulus.
  """
  if a.shape[-1] == 1:
    return a * b
  h = a.shape[-1] // 2
  a1, a2, b1, b2 = a[..., :h], a[..., h:], b[..., :h], b[..., h:]
  return np.concatenate(
      [_hc_mul(a1, b1) - _hc_mul(_conj(b2), a2),
       _hc_mul(_conj(a1), _conj(b2)) + _hc_mul(b1, _conj(a2))], -1)


def _to_uint16(a):
  """MATLAB's uint16(): round half away from zero, saturate."""
  return np.clip(np.floor(a + 0.5), 0, 65535)


def q2n(ref, x, block: int = 32, shift: int = 32) -> float:
  """Q2n (Q4, Q8, ...): the mean of `q2n_blocks`."""
  return float(q2n_blocks(ref, x, block, shift).mean())


def q2n_blocks(ref, x, block: int = 32, shift: int = 32) -> np.ndarray:
  """Hypercomplex UIQI of every block x block window, `shift` apart (flat).

  As the toolbox's `q2n`: both images mirror-padded at the bottom/right so
  the blocks `shift` apart cover them, quantised to uint16, bands
  zero-padded to a power of 2; each block is normalised by the reference
  block's per-band mean and std (ddof 1); Q2n is the mean over blocks of
  the modulus of the hypercomplex quality index.
  """
  ref, x = _pair(ref, x)
  h, w, c = ref.shape
  steps = (-(-h // shift), -(-w // shift))
  pads = [(0, max((s - 1) * shift + block - size, 0))
          for s, size in zip(steps, (h, w))]
  nc = 1 << (c - 1).bit_length()

  def blocks(a):
    a = _to_uint16(np.pad(a, pads + [(0, 0)], mode="symmetric"))
    a = np.pad(a, ((0, 0), (0, 0), (0, nc - c)))
    win = np.lib.stride_tricks.sliding_window_view(a, (block, block), (0, 1))
    win = win[::shift, ::shift][:steps[0], :steps[1]]
    return win.transpose(0, 1, 3, 4, 2).reshape(-1, block * block, nc)

  r, f = blocks(ref), blocks(x)
  mean = r.mean(1, keepdims=True)
  std = r.std(1, ddof=1, keepdims=True)
  std = np.where(std == 0, _EPS, std)
  r = (r - mean) / std + 1
  # The toolbox does not divide the fused block where the reference mean is 0.
  f = _conj((f - mean) / np.where(mean == 0, 1.0, std) + 1)

  n = block * block
  m1, m2 = r.mean(1), f.mean(1)
  n1, n2 = np.sum(m1**2, -1), np.sum(m2**2, -1)
  var_sum = n / (n - 1) * (np.sum(r**2, (1, 2)) / n + np.sum(f**2, (1, 2)) / n
                           - n1 - n2)
  mean_bias = 2 * np.sqrt(n1 * n2) / (n1 + n2)
  # The product is bilinear, so the block mean of r f is the product table
  # applied to the block's cross moments E[r_i f_j]: no per-pixel products.
  cross = (r.transpose(0, 2, 1) @ f / n - m1[:, :, None] * m2[:, None, :])
  eye = np.eye(nc)
  table = _hc_mul(eye[:, None, :], eye[None, :, :])  # e_i e_j, (nc, nc, nc)
  cov = n / (n - 1) * np.einsum("bij,ijk->bk", cross, table)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(var_sum == 0, mean_bias,
                    np.linalg.norm(cov, axis=-1) * mean_bias * 2 / var_sum)


def scc(x, ref) -> float:
  """Spatial correlation coefficient of Sobel gradient magnitudes.

  As the toolbox: 1-pixel border removed first, then zero-padded Sobel
  filtering, then one cosine over all pixels and bands. Where an image has
  no edge at all (all zero after the crop) the toolbox divides by a zero
  norm (NaN); here, as the flat-window rule of Wang & Bovik's Q, two
  edge-free images score 1 (they agree) and one alone scores 0.
  """
  ref, x = map(_planes, _pair(ref, x))

  def edges(a):
    a = a[:, 1:-1, 1:-1]
    grad = [ndimage.correlate1d(
        ndimage.correlate1d(a, [-1, 0, 1], axis=d, mode="constant"),
        [1, 2, 1], axis=3 - d, mode="constant") for d in (1, 2)]
    return np.hypot(*grad)

  ex, er = edges(x), edges(ref)
  norms = np.sqrt(np.sum(ex * ex) * np.sum(er * er))
  if norms == 0:
    return float(not ex.any() and not er.any())
  return float(np.sum(ex * er) / norms)


def block_uiqi(x, y, block: int) -> np.ndarray:
  """UIQI of each distinct block x block tile (`blockproc`) of (..., H, W)
  planes: (..., H / block, W / block)."""
  if x.shape[-2] % block or x.shape[-1] % block:
    raise ValueError(f"image size {x.shape[-2:]} is not a multiple of the "
                     f"block size {block}")
  return _uiqi(x, y, block, block)


def _block_q(x, y, block: int) -> np.ndarray:
  """Mean UIQI over distinct block x block tiles of each plane."""
  return block_uiqi(x, y, block).mean((-2, -1))


def distortion(q_a, q_b, p: float = 1) -> float:
  """QNR's distortion of two sets of indices: the p-mean of |q_a - q_b|."""
  return float(np.mean(np.abs(np.asarray(q_a) - q_b) ** p) ** (1 / p))


def pan_lowpass(pan, ratio: int) -> np.ndarray:
  """D_s's low-resolution PAN at PAN size (toolbox 1.0): MATLAB's bicubic
  `imresize` by 1/ratio, brought back up by `interp23tap`."""
  return wald.interp23tap(wald.bicubic_downsample(pan, ratio), ratio)


def d_lambda(x, ms_up, block: int = 32, p: float = 1) -> float:
  """Spectral distortion of QNR: inter-band UIQI of x vs. of upsampled MS.

  Toolbox 1.0 convention: both inter-band Q's are computed at PAN scale,
  on distinct block x block tiles.
  """
  x, ms_up = map(_planes, _pair(x, ms_up))
  i, j = np.triu_indices(x.shape[0], 1)
  q_fused = _block_q(x[i], x[j], block)
  q_ms = _block_q(ms_up[i], ms_up[j], block)
  return distortion(q_fused, q_ms, p)


def d_s(x, ms_up, pan, ratio: int = 4, block: int = 32, q: float = 1) -> float:
  """Spatial distortion of QNR: UIQI(band, PAN) at high vs. low resolution.

  Toolbox 1.0 convention: the low-resolution PAN is MATLAB's bicubic
  `imresize` by 1/ratio brought back up by `interp23tap`, compared with the
  upsampled MS; distinct block x block tiles.
  """
  x, ms_up = map(_planes, _pair(x, ms_up))
  pan = np.asarray(pan, np.float64).reshape(x.shape[1:])
  pan_lp = pan_lowpass(pan, ratio)
  q_high = _block_q(x, np.broadcast_to(pan, x.shape), block)
  q_low = _block_q(ms_up, np.broadcast_to(pan_lp, x.shape), block)
  return distortion(q_high, q_low, q)


def d_lambda_khan(x, ms_up, sensor: str = "generic", ratio: int = 4,
                  block: int = 32) -> float:
  """Khan's spectral distortion: 1 - Q2n(upsampled MS, MTF-filtered x)."""
  x, ms_up = _pair(x, ms_up)
  x_lp = wald.mtf_filter(x, wald.mtf_kernels(sensor, x.shape[-1], ratio))
  return 1.0 - q2n(ms_up, x_lp, block, block)


def qnr(x, ms_up, pan, ratio: int = 4, block: int = 32) -> float:
  """QNR = (1 - D_lambda) (1 - D_s), exponents 1."""
  return ((1 - d_lambda(x, ms_up, block)) *
          (1 - d_s(x, ms_up, pan, ratio, block)))


def hqnr(x, ms_up, pan, ratio: int = 4, sensor: str = "generic",
         block: int = 32) -> float:
  """Hybrid QNR = (1 - Khan's D_lambda) (1 - D_s)."""
  return ((1 - d_lambda_khan(x, ms_up, sensor, ratio, block)) *
          (1 - d_s(x, ms_up, pan, ratio, block)))


def _cut(a, dim_cut: int):
  """The toolbox's `a(dim_cut:end-dim_cut, ...)` in 0-based indexing.

  MATLAB's inclusive 1-based range drops dim_cut - 1 pixels at the top/left
  and dim_cut at the bottom/right.
  """
  return a[dim_cut - 1:-dim_cut, dim_cut - 1:-dim_cut] if dim_cut else a


def evaluate_reduced(ref, fused, *, ratio: int = 4, data_range: float,
                     dim_cut: int = 0, block: int = 32,
                     clip: bool = False) -> dict[str, float]:
  """All reduced-resolution metrics of `fused` against GT `ref` (DN).

  Args:
    ref: (H, W, C) ground truth.
    fused: (H, W, C) pansharpened image.
    ratio: PAN/MS resolution ratio (for ERGAS).
    data_range: peak value of the data (PSNR, SSIM), e.g. 2047 for 11 bits.
    dim_cut: border to drop first, as the toolbox's `dim_cut` (0: none).
    block: window of Q and block of Q2n.
    clip: clip `fused` to [0, data_range] first (the toolbox's th_values).

  Returns:
    {psnr, ssim, sam, ergas, q, q2n, scc}.
  """
  ref, fused = _pair(ref, fused)
  if clip:
    fused = np.clip(fused, 0, data_range)
  ref, fused = _cut(ref, dim_cut), _cut(fused, dim_cut)
  return {"psnr": psnr(ref, fused, data_range),
          "ssim": ssim(ref, fused, data_range),
          "sam": sam(ref, fused),
          "ergas": ergas(ref, fused, ratio),
          "q": q_index(ref, fused, block),
          "q2n": q2n(ref, fused, block, block),
          "scc": scc(fused, ref)}


def evaluate_full(fused, ms, pan, *, ratio: int = 4, sensor: str = "generic",
                  block: int = 32) -> dict[str, float]:
  """No-reference metrics of `fused` (H, W, C) from MS (h, w, C) and PAN (H, W).

  Returns {d_lambda, d_s, qnr, d_lambda_khan, hqnr}; MS is upsampled by
  `interp23tap`, as the toolbox's EXP.
  """
  ms_up = wald.interp23tap(ms, ratio)
  dl = d_lambda(fused, ms_up, block)
  ds = d_s(fused, ms_up, pan, ratio, block)
  dk = d_lambda_khan(fused, ms_up, sensor, ratio, block)
  return full_indices(dl, ds, dk)


def full_indices(dl: float, ds: float, dk: float) -> dict[str, float]:
  """{d_lambda, d_s, qnr, d_lambda_khan, hqnr} from D_lambda (dl), D_s (ds)
  and Khan's D_lambda (dk)."""
  return {"d_lambda": dl, "d_s": ds, "qnr": (1 - dl) * (1 - ds),
          "d_lambda_khan": dk, "hqnr": (1 - dk) * (1 - ds)}
