"""Nodata in scenes: which pixels are valid, a neutral fill for the others,
and the value that marks them in a written file.

A pixel is invalid where every band is nodata (GDAL's per-dataset mask):
marked by the file (its nodata tag, mask band or alpha, read as GDAL masks),
equal to an explicit nodata value (which then replaces the tags), or 0 in
every band when zeros count as nodata.

Invalid pixels are filled before a model or a filter sees them: each takes the
value of its mirror image across the nearest edge of valid data, along rows
first, then along columns for rows without any valid pixel. For a rectangular
valid area this is exactly the symmetric mirroring (`np.pad(mode='symmetric')`)
that the edges of a scene get, so a border of nodata changes nothing in the
valid pixels next to it: they are neither darkened (as a fill of zeros would)
nor brightened.
"""

import numpy as np


def invalid_pixels(raw: np.ndarray, value: float | None = None, zeros: bool = False,
                   masks: np.ndarray | None = None) -> np.ndarray:
  """(rows, cols) True where every band of (rows, cols, C) `raw` is nodata.

  Args:
    raw: stored values.
    value: explicit nodata value (NaN allowed).
    zeros: pixels that are 0 in every band are nodata too.
    masks: GDAL masks like `raw` (0: nodata), used when `value` is None.
  """
  invalid = np.zeros(raw.shape[:2], bool)
  if value is not None:
    same = np.isnan(raw) if np.isnan(value) else raw == value
    invalid |= same.all(-1)
  elif masks is not None:
    invalid |= (masks == 0).all(-1)
  if zeros:
    invalid |= (raw == 0).all(-1)
  return invalid


def _mirror_sources(valid: np.ndarray) -> np.ndarray:
  """For (n, length) `valid`, the index along each row whose value every
  position takes: itself where valid (or where the row has no valid pixel),
  else its mirror image across the nearest edge of a valid run, reflected
  back and forth inside that run when the run is shorter than the distance."""
  length = valid.shape[1]
  idx = np.broadcast_to(np.arange(length), valid.shape)

  def last_before(marks, fill):  # per position, the last marked index <= it
    return np.maximum.accumulate(np.where(marks, idx, fill), axis=1)

  def first_after(marks, fill):  # per position, the first marked index >= it
    return np.minimum.accumulate(np.where(marks, idx, fill)[:, ::-1], axis=1)[:, ::-1]

  left, right = last_before(valid, -1), first_after(valid, length)
  before = np.pad(valid, ((0, 0), (1, 0)))[:, :-1]
  after = np.pad(valid, ((0, 0), (0, 1)))[:, 1:]
  run_start, run_end = last_before(valid & ~before, 0), first_after(valid & ~after, length)
  from_left = (left >= 0) & ((right == length) | (idx - left <= right - idx))
  edge = np.clip(np.where(from_left, left, right), 0, length - 1)
  run = (np.take_along_axis(run_end, edge, 1) - np.take_along_axis(run_start, edge, 1) + 1)
  step = (np.abs(idx - edge) - 1) % (2 * run)
  inward = np.where(step < run, step, 2 * run - 1 - step)
  source = np.where(from_left, edge - inward, edge + inward)
  keep = valid | ((left < 0) & (right == length))
  return np.where(keep, idx, source)


def fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """(rows, cols, C) `values` with the invalid pixels filled (module docstring);
  a window without any valid pixel is returned unchanged."""
  if valid.all() or not valid.any():
    return values
  rows = np.take_along_axis(values, _mirror_sources(valid)[..., None], 1)
  row_valid = valid.any(1)
  return rows[_mirror_sources(row_valid[None])[0]]


def representable(value: float, dtype: np.dtype) -> bool:
  """Whether data of `dtype` can hold `value` (so it can mark nodata)."""
  dtype = np.dtype(dtype)
  if dtype.kind == "f":
    return True
  info = np.iinfo(dtype)
  return float(value).is_integer() and info.min <= value <= info.max


def output_value(dtype: np.dtype, preferred: float | None) -> float:
  """The nodata value of a written file: `preferred` (the MS's) where the
  dtype can hold it, else 0 for integers and NaN for floats."""
  if preferred is not None and representable(preferred, dtype):
    return float(preferred)
  return float("nan") if np.dtype(dtype).kind == "f" else 0.0


def mark(values: np.ndarray, valid: np.ndarray, value: float) -> np.ndarray:
  """(rows, cols, C) `values` with invalid pixels set to `value`; valid ones
  that happen to equal it move by one step (a unit, or the next float), so a
  reader never takes a valid band for nodata."""
  dtype = values.dtype
  if not np.isnan(value):
    if dtype.kind == "f":
      step = np.nextafter(dtype.type(value), dtype.type(np.inf))
    else:
      step = value + 1 if value < np.iinfo(dtype).max else value - 1
    values = np.where(valid[..., None] & (values == value), dtype.type(step), values)
  return np.where(valid[..., None], values, dtype.type(value))
