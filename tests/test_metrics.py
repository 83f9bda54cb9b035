"""Metrics: identities, hand-computed values and independent cross-checks."""

import numpy as np
import pytest
from scipy import ndimage
from skimage import metrics as skmetrics

from pansharp_jax import metrics
from pansharp_jax.data import wald


def _image(seed, shape=(64, 64, 4), dn=2047):
  """Integer DN image: smooth field, bright square, noise; correlated bands."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  field = ndimage.gaussian_filter(rng.normal(size=(h, w)), 6)
  field = (field - field.min()) / np.ptp(field)
  field[h // 4:h // 2, w // 4:w // 2] += 0.5
  img = 0.2 + 0.5 * field[..., None] * rng.uniform(0.5, 1.0, c)
  img += 0.03 * rng.normal(size=shape)
  return np.round(np.clip(img, 0, 1) * dn)


def _distorted(ref, seed):
  rng = np.random.default_rng(seed)
  gains = rng.uniform(0.9, 1.1, ref.shape[-1])
  return ndimage.gaussian_filter(ref, (1, 1, 0)) * gains + rng.normal(
      0, 20, ref.shape)


def _uiqi_reference(x, y):
  """Wang & Bovik's index of two windows, from numpy's covariance."""
  x, y = x.ravel(), y.ravel()
  cov = np.cov(x, y)
  return (4 * cov[0, 1] * x.mean() * y.mean() / (cov[0, 0] + cov[1, 1]) /
          (x.mean()**2 + y.mean()**2))


def _tiles_q(x, y, block):
  """Mean index over the distinct block x block tiles (MATLAB blockproc)."""
  return np.mean([_uiqi_reference(x[i:i + block, j:j + block],
                                  y[i:i + block, j:j + block])
                  for i in range(0, x.shape[0], block)
                  for j in range(0, x.shape[1], block)])


# --- Identities and hand-computed values ------------------------------------


@pytest.mark.parametrize("bands", [1, 3, 4, 8])
def test_identity(bands):
  ref = _image(0, (64, 64, bands))
  assert metrics.sam(ref, ref) == pytest.approx(0, abs=1e-12)
  assert metrics.ergas(ref, ref) == 0
  assert metrics.q_index(ref, ref) == pytest.approx(1, abs=1e-12)
  assert metrics.q2n(ref, ref) == pytest.approx(1, abs=1e-12)
  assert metrics.scc(ref, ref) == pytest.approx(1, abs=1e-12)
  assert metrics.ssim(ref, ref, 2047) == pytest.approx(1, abs=1e-12)
  assert metrics.psnr(ref, ref, 2047) == np.inf


def test_q2n_identity_with_padding():
  # 70x50 is not a multiple of 32: mirror padding; 3 bands: band padding.
  ref = _image(1, (70, 50, 3))
  assert metrics.q2n(ref, ref) == pytest.approx(1, abs=1e-12)


def test_sam_hand_computed():
  ref = np.array([[[1, 0], [1, 1], [0, 0]]], np.float64)
  fused = np.array([[[0, 1], [1, 0], [0, 0]]], np.float64)
  # 90 and 45 degrees; the zero pixel is excluded.
  assert metrics.sam(ref, fused) == pytest.approx(67.5)


def test_ergas_hand_computed():
  ref = np.full((8, 8, 4), 500.0)
  # 100/4 * sqrt(mean_k (125^2 / 500^2)) = 25 * 0.25.
  assert metrics.ergas(ref, 0.75 * ref, ratio=4) == pytest.approx(6.25)


def test_q_and_scc_of_scaled_image():
  x = _image(2)
  # Q = 1 (correlation) * 2*0.75/(1+0.75^2) (mean) * same (contrast).
  assert metrics.q_index(x, 0.75 * x) == pytest.approx(0.9216)
  assert metrics.scc(x, 0.75 * x) == pytest.approx(1)


def test_q_flat_windows():
  flat = np.full((40, 40, 1), 100.0)
  assert metrics.q_index(flat, flat, block=8) == 1
  # Two flat windows: only the mean term, 2*100*50 / (100^2 + 50^2).
  assert metrics.q_index(flat, flat / 2, block=8) == pytest.approx(0.8)


def test_scc_keeps_bands_apart():
  # Edges in band 0 only: a fused image with them in band 1 instead has
  # orthogonal gradient magnitudes.
  ref = np.zeros((32, 32, 2))
  ref[8:24, 8:24, 0] = 100
  assert metrics.scc(ref[..., ::-1], ref) == pytest.approx(0, abs=1e-12)


def test_d_lambda_zero_for_upsampled_ms():
  ms = _image(3, (16, 16, 4))
  ms_up = wald.interp23tap(ms, 4)
  assert metrics.d_lambda(ms_up, ms_up) == 0
  pan = ms_up.mean(-1)
  full = metrics.evaluate_full(ms_up, ms, pan, sensor="QB")
  assert full["d_lambda"] == 0
  assert full["qnr"] == pytest.approx(1 - full["d_s"])
  assert full["hqnr"] == pytest.approx(
      (1 - full["d_lambda_khan"]) * (1 - full["d_s"]))
  assert 0 <= full["d_s"] < 1 and 0 <= full["d_lambda_khan"] < 1


def test_block_size_must_divide_for_qnr():
  x = _image(5, (48, 48, 2))
  with pytest.raises(ValueError, match="multiple of the block size"):
    metrics.d_lambda(x, x)


# --- Guards: undefined cases are errors or documented values -----------------


def test_ergas_of_a_zero_mean_reference_band_is_an_error():
  ref = _image(20, (16, 16, 3))
  ref[..., 1] = 0
  with pytest.raises(ValueError, match="ergas: reference band 1 has mean 0"):
    metrics.ergas(ref, ref + 1)


def test_sam_without_a_nonzero_pixel_is_an_error():
  ref = _image(21, (16, 16, 3))
  with pytest.raises(ValueError, match="sam: every pixel has a zero"):
    metrics.sam(np.zeros_like(ref), ref)


def test_scc_of_edge_free_images():
  ref = _image(22, (16, 16, 3))
  zero = np.zeros_like(ref)
  assert metrics.scc(zero, zero) == 1
  assert metrics.scc(zero, ref) == 0 and metrics.scc(ref, zero) == 0
  # A flat non-zero image has edges at its zero-padded border (as MATLAB's
  # imfilter), so it scores as any other image.
  flat = np.full_like(ref, 50.0)
  assert metrics.scc(flat, 2 * flat) == pytest.approx(1)
  assert 0 < metrics.scc(flat, ref) < 1


@pytest.mark.parametrize("metric, size, window", [
    (lambda r, x: metrics.ssim(r, x, 2047), 10, 11),
    (lambda r, x: metrics.q_index(r, x, block=32), 31, 32),
], ids=["ssim", "q"])
def test_images_smaller_than_the_window_are_an_error(metric, size, window):
  ref = _image(23, (40, 40, 2))
  metric(ref[:window, :window], ref[:window, :window])  # one window is enough
  small = ref[:size, :window]
  with pytest.raises(ValueError, match=f"{size}x{window} image is smaller "
                                       f"than its {window}x{window} window"):
    metric(small, small)


# --- Cross-checks against independent implementations -----------------------


def _sam_from_the_paper(ref, fused):
  """Yuhas et al. (1992): the angle arccos(<v, w> / (|v| |w|)) per pixel,
  averaged over the pixels where both spectra are non-zero, in degrees."""
  angles = []
  for v, w in zip(ref.reshape(-1, ref.shape[-1]),
                  fused.reshape(-1, fused.shape[-1])):
    v, w = v.astype(np.float64), w.astype(np.float64)
    norm_v, norm_w = np.sqrt(v @ v), np.sqrt(w @ w)
    if norm_v and norm_w:
      angles.append(np.arccos(min(1.0, max(-1.0, v @ w / (norm_v * norm_w)))))
  return np.degrees(np.mean(angles))


def _ergas_from_the_paper(ref, fused, ratio):
  """Wald (2002): 100 h/l sqrt(1/N sum_k (RMSE_k / mu_k)^2), with h/l the
  PAN/MS pixel size ratio 1/ratio and mu_k the reference band mean."""
  terms = []
  for k in range(ref.shape[-1]):
    r, f = ref[..., k].astype(np.float64), fused[..., k].astype(np.float64)
    rmse = np.sqrt(np.mean((r - f) ** 2))
    terms.append((rmse / np.mean(r)) ** 2)
  return 100 / ratio * np.sqrt(np.mean(terms))


def test_sam_ergas_match_the_papers_formulas():
  """Always runs: an independent float64 reference, unlike torchmetrics."""
  ref = _image(24, (32, 32, 4))
  fused = _distorted(ref, 25)
  ref[3, 4] = 0  # a zero spectrum: excluded from SAM
  assert metrics.sam(ref, fused) == pytest.approx(
      _sam_from_the_paper(ref, fused), rel=1e-10)
  for ratio in (2, 4):
    assert metrics.ergas(ref, fused, ratio) == pytest.approx(
        _ergas_from_the_paper(ref, fused, ratio), rel=1e-10)


def test_psnr_ssim_match_skimage():
  ref = _image(6)
  fused = _distorted(ref, 7)
  assert metrics.psnr(ref, fused, 2047) == pytest.approx(
      skmetrics.peak_signal_noise_ratio(ref, fused, data_range=2047), rel=1e-12)
  expected = skmetrics.structural_similarity(
      ref, fused, data_range=2047, channel_axis=-1, gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False)
  assert metrics.ssim(ref, fused, 2047) == pytest.approx(expected, rel=1e-10)


def test_sam_ergas_match_torchmetrics():
  torch = pytest.importorskip("torch")
  pytest.importorskip("torchmetrics", minversion="1.4")
  # Imported here: torchmetrics is an optional test dependency.
  from torchmetrics.functional import image as tm

  ref = _image(8)
  fused = _distorted(ref, 9)
  preds, target = (torch.from_numpy(a.transpose(2, 0, 1)[None].copy())
                   for a in (fused, ref))
  sam_rad = float(tm.spectral_angle_mapper(preds, target))
  assert metrics.sam(ref, fused) == pytest.approx(np.degrees(sam_rad),
                                                  rel=1e-9)

  def tm_ergas(ratio):
    return float(tm.error_relative_global_dimensionless_synthesis(
        preds, target, ratio=ratio))

  # torchmetrics has used both 100 * ratio and 100 / ratio; ours is 100 / 4.
  tm_ratio = 4 if tm_ergas(4) < tm_ergas(1) else 1 / 4
  assert metrics.ergas(ref, fused, ratio=4) == pytest.approx(
      tm_ergas(tm_ratio), rel=1e-9)


def _hamilton(p, q):
  """Quaternion product, components (1, i, j, k) on the last axis."""
  a1, b1, c1, d1 = np.moveaxis(p, -1, 0)
  a2, b2, c2, d2 = np.moveaxis(q, -1, 0)
  return np.stack([a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
                   a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
                   a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
                   a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2], -1)


def _q4_reference(ref, fused, block=32):
  """Q4 from Alparone et al.'s definition, with textbook quaternions."""
  values = []
  for i in range(0, ref.shape[0], block):
    for j in range(0, ref.shape[1], block):
      r = ref[i:i + block, j:j + block].reshape(-1, 4)
      f = fused[i:i + block, j:j + block].reshape(-1, 4)
      mean, std = r.mean(0), r.std(0, ddof=1)
      z, w = (r - mean) / std + 1, (f - mean) / std + 1
      w_conj = w * [1, -1, -1, -1]
      mz, mw = z.mean(0), w_conj.mean(0)
      n = len(z)
      cov = n / (n - 1) * (_hamilton(z, w_conj).mean(0) - _hamilton(mz, mw))
      var_z = n / (n - 1) * np.mean(np.sum((z - mz) ** 2, -1))
      var_w = n / (n - 1) * np.mean(np.sum((w_conj - mw) ** 2, -1))
      nz, nw = np.linalg.norm(mz), np.linalg.norm(mw)
      values.append(np.linalg.norm(cov) * 2 / (var_z + var_w) *
                    2 * nz * nw / (nz**2 + nw**2))
  return np.mean(values)


def test_q4_matches_quaternion_definition():
  ref = _image(10, (64, 64, 4))
  fused = np.round(_distorted(ref, 11))  # integers: no uint16 rounding
  assert metrics.q2n(ref, fused) == pytest.approx(_q4_reference(ref, fused),
                                                  rel=1e-10)


def test_q2n_of_single_band_is_block_uiqi_of_normalised_block():
  ref = _image(12, (64, 64, 1))[..., 0]
  fused = np.round(_distorted(ref[..., None], 13))[..., 0]
  expected = []
  for i in range(0, 64, 32):
    for j in range(0, 64, 32):
      r, f = ref[i:i + 32, j:j + 32], fused[i:i + 32, j:j + 32]
      mean, std = r.mean(), r.std(ddof=1)
      expected.append(abs(_uiqi_reference((r - mean) / std + 1,
                                          (f - mean) / std + 1)))
  assert metrics.q2n(ref, fused) == pytest.approx(np.mean(expected), rel=1e-10)


def test_q_index_matches_windowed_definition():
  ref = _image(14, (40, 36, 2))
  fused = _distorted(ref, 15)
  block = 8
  values = [_uiqi_reference(ref[i:i + block, j:j + block, k],
                            fused[i:i + block, j:j + block, k])
            for i in range(40 - block + 1) for j in range(36 - block + 1)
            for k in range(2)]
  assert metrics.q_index(ref, fused, block) == pytest.approx(np.mean(values),
                                                             rel=1e-10)


def test_qnr_terms_match_block_definitions():
  ms = _image(18, (16, 16, 3))
  ms_up = wald.interp23tap(ms, 4)
  fused = _distorted(ms_up, 19)
  pan = fused.mean(-1) + 5
  block = 16
  pairs = [(0, 1), (0, 2), (1, 2)]
  d_lambda = np.mean([abs(_tiles_q(fused[..., i], fused[..., j], block) -
                          _tiles_q(ms_up[..., i], ms_up[..., j], block))
                      for i, j in pairs])
  assert metrics.d_lambda(fused, ms_up, block) == pytest.approx(d_lambda,
                                                                rel=1e-9)
  pan_lp = wald.interp23tap(wald.bicubic_downsample(pan, 4), 4)
  d_s = np.mean([abs(_tiles_q(fused[..., k], pan, block) -
                     _tiles_q(ms_up[..., k], pan_lp, block)) for k in range(3)])
  assert metrics.d_s(fused, ms_up, pan, 4, block) == pytest.approx(d_s,
                                                                   rel=1e-9)


# --- evaluate_reduced options -------------------------------------------------


def test_evaluate_reduced_keys_and_dim_cut():
  ref = _image(16, (64, 64, 4))
  fused = ref.copy()
  fused[:2] += 100  # MATLAB's x(3:end-3) drops rows 0-1 and the last 3
  fused[-3:] += 100
  cut = metrics.evaluate_reduced(ref, fused, data_range=2047, dim_cut=3)
  assert set(cut) == {"psnr", "ssim", "sam", "ergas", "q", "q2n", "scc"}
  assert cut["ergas"] == 0
  fused[2] += 100
  assert metrics.evaluate_reduced(ref, fused, data_range=2047,
                                  dim_cut=3)["ergas"] > 0


def test_evaluate_reduced_clip():
  ref = _image(17, (32, 32, 4))
  over = ref.copy()
  over[0, 0] = 5000
  over[0, 1] = -10
  clipped = np.clip(over, 0, 2047)
  assert metrics.evaluate_reduced(ref, over, data_range=2047, clip=True) == (
      metrics.evaluate_reduced(ref, clipped, data_range=2047))
