"""Quicklook PNG panels: MS | PAN | fused | GT | |error|.

Inputs are HWC float arrays in [0, 1] at PAN resolution (MS already upsampled,
PAN as HW1 or HW). RGB is red, green and blue in the sensors' band orders
(RGB_BANDS: 4 bands B, G, R, NIR as QuickBird/IKONOS/GeoEye-1/GF-2; 8 bands
as WorldView-2/3), else the first three bands.
Panels smaller than MIN_PANEL_SIDE are enlarged pixel by pixel (nearest
neighbour, an integer zoom); each title is centred over its own panel.
One percentile 2-98 stretch is computed over MS, fused and GT together and
applied to all three, so a colour shift in the fused panel is a real shift and
not a display artefact. The error panel is the per-pixel mean absolute error
over all bands, amplified by a fixed gain and labelled with it, so panels of
different samples read on the same scale.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Band count -> indices of red, green and blue.
RGB_BANDS = {4: (2, 1, 0), 8: (4, 2, 1)}
# |error| of 1/ERROR_GAIN (about 12 DN of 255) already shows white.
ERROR_GAIN = 20.0
# Small crops (64 px) are enlarged by an integer nearest-neighbour zoom until
# a panel is this wide, so single pixels stay visible.
MIN_PANEL_SIDE = 256
_SEPARATOR = 6   # pixels of white between panels
_TITLE_SIZE = 16  # title font size (px), smaller only if a title would not fit
_TITLE_PAD = 4
_MIN_TITLE_WIDTH = 128  # px: the longest title at full size, with margins


def _as_hwc(x: np.ndarray, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float32)
  if x.ndim == 2:
    x = x[..., None]
  if x.ndim != 3:
    raise ValueError(f"quicklook: {name} must be HxWxC, got shape {x.shape}")
  return x


def _rgb(x: np.ndarray) -> np.ndarray:
  """True colour where the band order is known, else the first three bands;
  single-band images become grey."""
  if x.shape[-1] >= 3:
    return x[..., list(RGB_BANDS.get(x.shape[-1], (0, 1, 2)))]
  return np.repeat(x[..., :1], 3, axis=-1)


def _stretch(images, low=2.0, high=98.0):
  """One linear stretch shared by all images (percentiles of their union)."""
  values = np.concatenate([im.reshape(-1) for im in images])
  values = values[np.isfinite(values)]
  if values.size == 0:
    lo, hi = 0.0, 1.0
  else:
    lo, hi = np.percentile(values, [low, high])
  if hi - lo < 1e-6:
    hi = lo + 1e-6
  return [np.clip((im - lo) / (hi - lo), 0.0, 1.0) for im in images]


def _to_uint8(x: np.ndarray) -> np.ndarray:
  x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
  return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def compose_panels(ms_up, pan, fused, gt=None
                   ) -> tuple[list[np.ndarray], list[str]]:
  """The panels as uint8 RGB arrays at the input size, and their titles."""
  ms_up = _as_hwc(ms_up, "ms_up")
  pan = _as_hwc(pan, "pan")
  fused = _as_hwc(fused, "fused")
  h, w = fused.shape[:2]
  for name, x in (("ms_up", ms_up), ("pan", pan)):
    if x.shape[:2] != (h, w):
      raise ValueError(
          f"quicklook: {name} is {x.shape[0]}x{x.shape[1]}, fused is {h}x{w}")
  colour = [_rgb(ms_up), _rgb(fused)]
  if gt is not None:
    gt = _as_hwc(gt, "gt")
    if gt.shape != fused.shape:
      raise ValueError(f"quicklook: gt shape {gt.shape} != fused {fused.shape}")
    colour.append(_rgb(gt))
  colour = _stretch(colour)
  (pan_s,) = _stretch([_rgb(pan)])
  panels = [colour[0], pan_s, colour[1]]
  titles = ["MS (upsampled)", "PAN", "fused"]
  if gt is not None:
    err = np.abs(fused - gt).mean(axis=-1, keepdims=True)
    panels += [colour[2], np.repeat(np.clip(err * ERROR_GAIN, 0, 1), 3, -1)]
    titles += ["GT", f"|fused-GT| x{ERROR_GAIN:g}"]
  return [_to_uint8(p) for p in panels], titles


def enlargement(height: int, width: int) -> int:
  """Integer nearest-neighbour zoom that makes a panel's longer side at
  least MIN_PANEL_SIDE and its width at least _MIN_TITLE_WIDTH pixels (1 for
  panels already that large)."""
  return max(1, -(-MIN_PANEL_SIDE // max(height, width, 1)),
             -(-_MIN_TITLE_WIDTH // max(width, 1)))


def _title_font(titles, width):
  """The largest font up to _TITLE_SIZE whose titles all fit in `width`."""
  for size in range(_TITLE_SIZE, 5, -1):
    font = ImageFont.load_default(size=size)
    if max(font.getlength(t) for t in titles) <= width - 4:
      return font
  return font


def render(panels: list[np.ndarray], titles: list[str]) -> Image.Image:
  """The panels side by side, each enlarged by `enlargement`, with its title
  centred above it."""
  h, w = panels[0].shape[:2]
  zoom = enlargement(h, w)
  ph, pw = h * zoom, w * zoom
  font = _title_font(titles, pw)
  top, bottom = font.getbbox("Ag|")[1], font.getbbox("Ag|")[3]
  band = bottom - top + 2 * _TITLE_PAD
  width = len(panels) * pw + (len(panels) - 1) * _SEPARATOR
  canvas = Image.new("RGB", (width, band + ph), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for i, (panel, title) in enumerate(zip(panels, titles)):
    left = i * (pw + _SEPARATOR)
    big = Image.fromarray(panel, "RGB").resize((pw, ph), Image.NEAREST)
    canvas.paste(big, (left, band))
    x = left + (pw - font.getlength(title)) / 2
    draw.text((x, _TITLE_PAD - top), title, fill=(0, 0, 0), font=font)
  return canvas


def write_quicklook(path, ms_up, pan, fused, gt=None) -> str:
  """Writes the panel PNG to `path` (parent folders created) and returns it."""
  canvas = render(*compose_panels(ms_up, pan, fused, gt))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path, format="PNG")
  return str(path)
