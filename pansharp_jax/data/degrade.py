"""Blur + decimate degradation (temporary Gaussian stand-in until wald.py lands)."""

import numpy as np
from scipy import ndimage


def blur_decimate(img: np.ndarray, sensor: str, ratio: int) -> np.ndarray:
  del sensor
  sigma = ratio * 0.5
  blurred = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="nearest")
  return blurred[ratio // 2::ratio, ratio // 2::ratio].astype(np.float32)


def upsample(img: np.ndarray, ratio: int) -> np.ndarray:
  return np.clip(ndimage.zoom(img, (ratio, ratio, 1), order=3, mode="nearest"),
                 0, 1).astype(np.float32)


def wald_triple(ms_full, pan_full, sensor, ratio):
  ms = blur_decimate(ms_full, sensor, ratio)
  pan = blur_decimate(pan_full, sensor, ratio)
  return {"gt": ms_full, "ms": ms, "lms": upsample(ms, ratio), "pan": pan}
