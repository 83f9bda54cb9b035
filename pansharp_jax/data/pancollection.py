"""PanCollection HDF5 files (train_wv3.h5, test_gf2_multiExm1.h5, ...) as a data source.

Each file holds datasets gt, ms, lms and pan, N x C x H x W in sensor units
(2047 for WV3/QB/WV2, 1023 for GF-2). Full-resolution test files have no gt.
Keys, shapes and dtypes are checked when the source is built, and so are the
values of the first image (NaN/Inf, range); samples are read one at a time,
so a file of many gigabytes is never loaded whole. The file is
opened on first access in each process, because grain may fork workers and an
HDF5 handle must not cross a fork.
"""

import os

import h5py
import numpy as np

from pansharp_jax.data import checks
from pansharp_jax.errors import require

KEYS = ("gt", "ms", "lms", "pan")


class PanCollectionSource:
  """Samples {gt, ms, lms, pan} (HWC, [0, 1]) from one PanCollection file."""

  def __init__(self, path: str, *, num_bands: int, ratio: int, max_value: float,
               require_gt: bool = True):
    self.path = path
    self.name = os.path.splitext(os.path.basename(path))[0]
    self.num_bands, self.ratio, self.max_value = num_bands, ratio, float(max_value)
    with checks.readable(path, "HDF5 file"), h5py.File(path, "r") as f:
      self._keys = self._validate(f, require_gt)
      self._length = f["pan"].shape[0]
      # One image per dataset is cheap, and catches a file in other units
      # (max_value) or with NaN nodata before training starts.
      self._read(f, 0)
    self._file, self._pid = None, None

  def _validate(self, f: h5py.File, require_gt: bool) -> tuple[str, ...]:
    """Checks keys and shapes; returns the keys present."""
    path = self.path
    for key in KEYS if require_gt else KEYS[1:]:
      require(key in f, path, f'missing dataset "{key}"')
    keys = tuple(key for key in KEYS if key in f)
    shapes = {}
    for key in keys:
      shape = f[key].shape if isinstance(f[key], h5py.Dataset) else ()
      require(len(shape) == 4, path,
              f'dataset "{key}" has shape {shape}, expected N x C x H x W')
      shapes[key] = shape
      require(f[key].dtype.kind in "fiu", path,
              f'dataset "{key}" holds {f[key].dtype} values, expected numbers')
    count = shapes["pan"][0]
    for key in keys:
      require(shapes[key][0] == count, path,
              f'dataset "{key}" has {shapes[key][0]} images, "pan" has {count}')
      if key != "pan":
        checks.require_bands(shapes[key][1], self.num_bands, f'{path}: dataset "{key}"')
    require(count > 0, path, "no images")
    require(shapes["pan"][1] == 1, path,
            f'dataset "pan" has {shapes["pan"][1]} bands, expected 1')
    pan_hw = shapes["pan"][2:]
    for key in ("gt", "lms"):
      if key in shapes:
        require(shapes[key][2:] == pan_hw, path,
                f'dataset "{key}" is {shapes[key][2]}x{shapes[key][3]} px, '
                f'"pan" is {pan_hw[0]}x{pan_hw[1]} px')
    checks.require_pan_size(shapes["ms"][2:], pan_hw, self.ratio, path)
    return keys

  def __len__(self) -> int:
    return self._length

  def _open(self) -> h5py.File:
    if self._file is None or self._pid != os.getpid():
      self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
    return self._file

  def __getstate__(self):
    # Pickled for worker processes: they open their own handle.
    return dict(self.__dict__, _file=None, _pid=None)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not 0 <= index < self._length:
      raise IndexError(index)
    return self._read(self._open(), index)

  def _read(self, f: h5py.File, index: int) -> dict[str, np.ndarray]:
    sample = {}
    for key in self._keys:
      where = f'{self.path}: dataset "{key}" image {index}'
      # lms was interpolated by the file's producer and may overshoot the range.
      sample[key] = checks.to_unit(np.moveaxis(f[key][index], 0, -1), self.max_value,
                                   where, clip=key == "lms")
    return sample
