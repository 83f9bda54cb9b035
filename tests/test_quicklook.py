"""Quicklook panels: layout, shared stretch, error scale."""

import numpy as np
from PIL import Image

from pansharp_jax import quicklook


def _scene(seed, h=24, w=20, c=4):
  rng = np.random.default_rng(seed)
  return rng.uniform(0.2, 0.8, (h, w, c)).astype(np.float32)


def test_panels_with_gt(tmp_path):
  gt = _scene(0)
  fused = np.clip(gt + 0.01, 0, 1)
  path = quicklook.write_quicklook(
      tmp_path / "q" / "a.png", _scene(1), gt[..., :1], fused, gt)
  image = np.asarray(Image.open(path))
  sep = quicklook._SEPARATOR
  assert image.shape == (24 + quicklook._LABEL_HEIGHT, 5 * 20 + 4 * sep, 3)
  panels, titles = quicklook.compose_panels(_scene(1), gt[..., :1], fused, gt)
  assert len(titles) == 5
  np.testing.assert_array_equal(image[quicklook._LABEL_HEIGHT:], panels)
  # Error panel: 0.01 * gain everywhere.
  err = panels[:, 4 * (20 + sep):, 0]
  np.testing.assert_allclose(err, round(0.01 * quicklook.ERROR_GAIN * 255), atol=1)


def test_shared_stretch_and_no_gt():
  gt = _scene(0)
  panels, titles = quicklook.compose_panels(gt, gt[..., 0], gt)
  assert titles == ["MS (upsampled)", "PAN", "fused"]
  w = 20 + quicklook._SEPARATOR
  assert panels.shape == (24, 3 * 20 + 2 * quicklook._SEPARATOR, 3)
  # Same input, same stretch: MS and fused panels are identical.
  np.testing.assert_array_equal(panels[:, :20], panels[:, 2 * w:2 * w + 20])
  assert panels[:, :20].min() == 0 and panels[:, :20].max() == 255
  # A darker fused image stays darker under the shared stretch.
  dark, _ = quicklook.compose_panels(gt, gt[..., :1], gt * 0.5)
  assert dark[:, 2 * w:2 * w + 20].mean() < dark[:, :20].mean()
