"""Quicklook PNG panels: MS | PAN | fused | GT | |error|.

Inputs are HWC float arrays in [0, 1] at PAN resolution (MS already upsampled,
PAN as HW1 or HW). RGB is taken from the first three bands in the order given.
One percentile 2-98 stretch is computed over MS, fused and GT together and
applied to all three, so a colour shift in the fused panel is a real shift and
not a display artefact. The error panel is the per-pixel mean absolute error
over all bands, amplified by a fixed gain and labelled with it, so panels of
different samples read on the same scale.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

# |error| of 1/ERROR_GAIN (about 12 DN of 255) already shows white.
ERROR_GAIN = 20.0
_SEPARATOR = 4  # pixels of white between panels
_LABEL_HEIGHT = 14


def _as_hwc(x: np.ndarray, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float32)
  if x.ndim == 2:
    x = x[..., None]
  if x.ndim != 3:
    raise ValueError(f"quicklook: {name} must be HxWxC, got shape {x.shape}")
  return x


def _rgb(x: np.ndarray) -> np.ndarray:
  """First three bands; single-band images become grey."""
  if x.shape[-1] >= 3:
    return x[..., :3]
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


def compose_panels(ms_up, pan, fused, gt=None) -> tuple[np.ndarray, list[str]]:
  """The panels as one uint8 RGB array (no labels) and their titles."""
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
  sep = np.ones((h, _SEPARATOR, 3), np.float32)
  row = []
  for i, p in enumerate(panels):
    if i:
      row.append(sep)
    row.append(p)
  return _to_uint8(np.concatenate(row, axis=1)), titles


def write_quicklook(path, ms_up, pan, fused, gt=None) -> str:
  """Writes the panel PNG to `path` (parent folders created) and returns it."""
  image, titles = compose_panels(ms_up, pan, fused, gt)
  h, w = image.shape[:2]
  canvas = Image.new("RGB", (w, h + _LABEL_HEIGHT), (255, 255, 255))
  canvas.paste(Image.fromarray(image, "RGB"), (0, _LABEL_HEIGHT))
  draw = ImageDraw.Draw(canvas)
  panel_w = (w - _SEPARATOR * (len(titles) - 1)) // len(titles)
  for i, title in enumerate(titles):
    draw.text((i * (panel_w + _SEPARATOR) + 2, 1), title, fill=(0, 0, 0))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path, format="PNG")
  return str(path)
