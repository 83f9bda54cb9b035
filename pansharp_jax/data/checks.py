"""Validation shared by the file-backed sources; every failure is a DataError.

Messages read '<file or field>: <problem>' so a user can fix the input
without a traceback: missing folders, unmatched names, band counts, PAN/MS
sizes, unreadable files, NaN/Inf and values outside the configured range.
"""

import contextlib
import os

import numpy as np

from pansharp_jax.errors import DataError, require

# How many unmatched names an error lists before '... (+N more)'.
_LIST_AT_MOST = 5


def list_folder(folder: str, extensions: tuple[str, ...]) -> dict[str, str]:
  """Maps file stem -> path for the files in `folder` with one of `extensions`."""
  require(os.path.isdir(folder), folder, "missing folder")
  files = {}
  for entry in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(entry)
    if entry.startswith(".") or ext.lower() not in extensions:
      continue
    path = os.path.join(folder, entry)
    if stem in files:
      raise DataError(f"{path}: same name as {os.path.basename(files[stem])}")
    files[stem] = path
  return files


def match_stems(folders: dict[str, str], extensions: tuple[str, ...],
                where: str) -> tuple[list[str], dict[str, dict[str, str]]]:
  """Pairs files across folders by stem (extensions may differ).

  Args:
    folders: label (e.g. 'GT') -> folder path.
    extensions: accepted lower-case extensions, with the dot.
    where: what the error names when the stems do not match.

  Returns:
    The sorted common stems and, per label, stem -> path.
  """
  files = {label: list_folder(folder, extensions) for label, folder in folders.items()}
  every = sorted(set().union(*files.values()))
  unmatched = []
  for stem in every:
    missing = [label for label in folders if stem not in files[label]]
    if missing:
      unmatched.append(f"{stem} (no {', '.join(missing)})")
  if unmatched:
    more = len(unmatched) - _LIST_AT_MOST
    listed = "; ".join(unmatched[:_LIST_AT_MOST]) + (f"; ... (+{more} more)" if more > 0 else "")
    raise DataError(f"{where}: file names do not match between "
                    f"{', '.join(folders)}: {listed}")
  return every, files


def require_nonempty(count: int, where: str, split: str) -> None:
  require(count > 0, where, f"empty {split} split")


@contextlib.contextmanager
def readable(path: str, what: str = "image"):
  """Turns any decoder failure inside the block into 'path: unreadable <what>'."""
  require(os.path.isfile(path), path, "file not found")
  try:
    yield
  except DataError:
    raise
  except Exception as e:  # Decoders raise many unrelated types on corrupt files.
    raise DataError(f"{path}: unreadable {what} ({type(e).__name__}: {e})") from e


def single_band_pan(pan: np.ndarray, where: str) -> np.ndarray:
  """(H, W, 1) PAN; a 3-channel image is accepted only when it is gray."""
  bands = pan.shape[-1]
  if bands == 3 and (pan == pan[..., :1]).all():
    return pan[..., :1]
  require(bands == 1, where, f"PAN has {bands} bands, expected 1"
          + (" (or 3 identical gray channels)" if bands == 3 else ""))
  return pan


def max_value_for(dtype: np.dtype, configured: float) -> float:
  """Sensor units of 1.0: 255 for 8-bit data, else the configured value (e.g. 2047)."""
  return 255.0 if np.dtype(dtype) == np.uint8 else float(configured)


def require_same_dtype(dtype: np.dtype, expected: np.dtype, where: str) -> None:
  """Mixed bit depths in one dataset would silently scale some files wrongly."""
  dtype, expected = np.dtype(dtype), np.dtype(expected)
  # Byte order does not matter (big-endian TIFFs and PNGs decode to the same values).
  same = (dtype.kind, dtype.itemsize) == (expected.kind, expected.itemsize)
  require(same, where, f"{dtype.name} data in a dataset of {expected.name} files")


def require_bands(count: int, expected: int, where: str) -> None:
  require(count == expected, where,
          f"{count} bands, but config.data.num_bands={expected}")


def require_pan_size(ms_hw, pan_hw, ratio: int, where: str) -> None:
  """PAN must be exactly `ratio` x the MS size."""
  (mh, mw), (ph, pw) = ms_hw, pan_hw
  require((ph, pw) == (ratio * mh, ratio * mw), where,
          f"PAN size {ph}x{pw} is not ratio {ratio} x MS size {mh}x{mw}")


def to_unit(array: np.ndarray, max_value: float, where: str, *,
            clip: bool = False) -> np.ndarray:
  """float32 in [0, 1] from sensor units, after checking finiteness and range.

  Args:
    array: values in sensor units (DN).
    max_value: the sensor value that maps to 1.0.
    where: names the data in errors.
    clip: clip to the range instead of rejecting values outside it (for
      interpolated data such as a file's `lms`, which may overshoot).

  Returns:
    `array / max_value` as float32.
  """
  array = np.asarray(array)
  if array.dtype.kind == "f":
    require(bool(np.isfinite(array).all()), where, "NaN or Inf values")
  scaled = array.astype(np.float32) / np.float32(max_value)
  if clip:
    return np.clip(scaled, 0.0, 1.0)
  low, high = float(array.min()), float(array.max())
  require(low >= 0, where, f"wrong dtype range: negative values (min {low:g})")
  # A relative slack absorbs float rounding of stored DN values.
  require(high <= max_value * (1 + 1e-6), where,
          f"wrong dtype range: values up to {high:g} exceed "
          f"data.max_value={max_value:g}")
  return scaled
