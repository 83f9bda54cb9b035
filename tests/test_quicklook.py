"""Quicklook panels: layout, enlargement, titles, shared stretch, error scale."""

import numpy as np
from PIL import Image
import pytest

from pansharp_jax import quicklook


def _scene(seed, h=24, w=20, c=4):
  rng = np.random.default_rng(seed)
  return rng.uniform(0.2, 0.8, (h, w, c)).astype(np.float32)


def _panel_columns(image_width, count):
  """[start, stop) columns of each panel in a rendered quicklook."""
  width = (image_width - (count - 1) * quicklook._SEPARATOR) // count
  return [(i * (width + quicklook._SEPARATOR),
           i * (width + quicklook._SEPARATOR) + width) for i in range(count)]


def test_panels_with_gt(tmp_path):
  gt = _scene(0)
  fused = np.clip(gt + 0.01, 0, 1)
  path = quicklook.write_quicklook(
      tmp_path / "q" / "a.png", _scene(1), gt[..., :1], fused, gt)
  image = np.asarray(Image.open(path))
  panels, titles = quicklook.compose_panels(_scene(1), gt[..., :1], fused, gt)
  assert len(titles) == len(panels) == 5
  # 24 x 20 px panels are enlarged 11x (to >= 256 px), nearest neighbour.
  zoom = quicklook.enlargement(24, 20)
  assert zoom == 11 and 24 * zoom >= quicklook.MIN_PANEL_SIDE
  band = image.shape[0] - 24 * zoom
  assert image.shape[1] == 5 * 20 * zoom + 4 * quicklook._SEPARATOR
  for (start, stop), panel in zip(_panel_columns(image.shape[1], 5), panels):
    big = image[band:, start:stop]
    np.testing.assert_array_equal(big[::zoom, ::zoom], panel)
    np.testing.assert_array_equal(big, np.repeat(np.repeat(panel, zoom, 0),
                                                 zoom, 1))
  # Error panel: 0.01 * gain everywhere.
  np.testing.assert_allclose(panels[4][..., 0],
                             round(0.01 * quicklook.ERROR_GAIN * 255), atol=1)


@pytest.mark.parametrize("size", [(64, 64), (16, 16), (300, 40)])
def test_titles_sit_over_their_own_panels(tmp_path, size):
  """Each title's ink lies inside its panel's columns, none in the gaps, and
  titles do not touch each other (the long 'MS (upsampled)' did)."""
  gt = _scene(0, *size)
  path = quicklook.write_quicklook(tmp_path / "a.png", gt, gt[..., 0], gt, gt)
  image = np.asarray(Image.open(path)).astype(int)
  zoom = quicklook.enlargement(*size)
  header = image[:image.shape[0] - size[0] * zoom]
  assert header.shape[0] >= 10
  ink = (header < 128).any(axis=(0, 2))  # dark text pixels per column
  columns = _panel_columns(image.shape[1], 5)
  inside = np.zeros_like(ink)
  for start, stop in columns:
    inside[start:stop] = True
    assert ink[start:stop].any()  # every panel has its title
    assert not ink[start] and not ink[stop - 1]  # with margins on both sides
  assert not ink[~inside].any()


def test_large_panels_are_not_enlarged():
  assert quicklook.enlargement(512, 400) == 1
  assert quicklook.enlargement(64, 64) == 4


def test_true_colour_band_order():
  """4-band (B, G, R, NIR) and 8-band (WorldView) data show as R, G, B."""
  x = np.zeros((4, 4, 4), np.float32)
  x[..., 2] = 1.0  # red band
  panels, _ = quicklook.compose_panels(x, x[..., 0], x)
  assert (panels[0][..., 0] >= panels[0][..., 2]).all()
  assert panels[0][..., 0].max() == 255 and panels[0][..., 2].max() == 0


def test_shared_stretch_and_no_gt():
  gt = _scene(0)
  panels, titles = quicklook.compose_panels(gt, gt[..., 0], gt)
  assert titles == ["MS (upsampled)", "PAN", "fused"]
  assert [p.shape for p in panels] == [(24, 20, 3)] * 3
  # Same input, same stretch: MS and fused panels are identical.
  np.testing.assert_array_equal(panels[0], panels[2])
  assert panels[0].min() == 0 and panels[0].max() == 255
  # A darker fused image stays darker under the shared stretch.
  dark, _ = quicklook.compose_panels(gt, gt[..., :1], gt * 0.5)
  assert dark[2].mean() < dark[0].mean()
