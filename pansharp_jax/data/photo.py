"""Photo folders, the original project's layout, as a data source.

  ROOT/dataset/{GT,MS,PAN}/<name>.<png|jpg|bmp|tif>      train + val
  ROOT/testdateset/{GT,MS,PAN}/<name>.<...>              test (sic: the original spelling)

Files pair up by name stem; extensions may differ between folders. Train and
val split the sorted names: the first 600 train and the next 50 val (as the
original project), or 90/10 when there are fewer than 650. A test folder
without GT/ is full-resolution data: its samples have no 'gt'.

MS may be stored at two sizes:
- GT/ratio, the true low-resolution MS: lms = interp23tap(ms).
- GT size, an already upsampled copy (what the original project ships): it is
  used unchanged as lms, so the EXP baseline is exactly the data's, and ms is
  its ratio x ratio block mean. Block averaging, not a sensor-MTF blur, because
  the copy is already low-pass (it was interpolated from the true MS) and a
  second blur would soften ms twice.

8-bit images are scaled by 255; other bit depths by data.max_value (e.g. 2047),
and values above it are an error rather than a silently clipped dataset.
When the source is built, every file's header is checked (sizes, band counts,
bit depths) and the first sample's pixels are decoded and checked (NaN/Inf,
range, gray PAN), so common mistakes surface before training starts; the
other samples' pixels are checked when they are read.
"""

import os

import numpy as np
from PIL import Image

from pansharp_jax.data import checks, geotiff, wald
from pansharp_jax.errors import require

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TRAIN_COUNT, VAL_COUNT = 600, 50
_PIL_DTYPES = {"L": np.uint8, "RGB": np.uint8, "RGBA": np.uint8,
               "I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16,
               "I": np.int32, "F": np.float32}


def _is_tiff(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in geotiff.TIFF_EXTENSIONS


def _pil_dtype(image: Image.Image, path: str) -> np.dtype:
  require(image.mode in _PIL_DTYPES, path,
          f"unsupported image mode {image.mode} (use gray, RGB, RGBA or TIFF)")
  # Pillow decodes 16-bit RGB(A) PNGs to 8 bits without a word.
  rawmode = str(image.tile[0][3]) if image.tile else ""
  require(not (image.mode in ("RGB", "RGBA") and ";16" in rawmode), path,
          "16-bit multi-band PNG, which Pillow reads as 8-bit; save it as TIFF")
  return np.dtype(_PIL_DTYPES[image.mode])


def image_header(path: str) -> tuple[tuple[int, int, int], np.dtype]:
  """(H, W, C) and dtype of an image file without decoding its pixels."""
  if _is_tiff(path):
    return geotiff.tiff_header(path)
  with checks.readable(path), Image.open(path) as image:
    return (image.height, image.width, len(image.getbands())), _pil_dtype(image, path)


def read_image(path: str) -> np.ndarray:
  """(H, W, C) pixels in the stored bit depth, native byte order."""
  if _is_tiff(path):
    return geotiff.read_tiff(path)
  with checks.readable(path), Image.open(path) as image:
    dtype = _pil_dtype(image, path)
    array = np.asarray(image).astype(dtype)
  return array[..., None] if array.ndim == 2 else array


def split_slice(count: int, split: str) -> slice:
  """Which of `count` sorted names belong to 'train' or 'val'."""
  if count >= TRAIN_COUNT + VAL_COUNT:
    num_train, num_val = TRAIN_COUNT, VAL_COUNT
  else:
    num_train = 9 * count // 10
    num_val = count - num_train
  return slice(0, num_train) if split == "train" else slice(num_train, num_train + num_val)


def _block_mean(image: np.ndarray, ratio: int) -> np.ndarray:
  h, w, c = image.shape
  return image.reshape(h // ratio, ratio, w // ratio, ratio, c).mean(axis=(1, 3))


class PhotoFolderSource:
  """Samples {gt, ms, lms, pan} from image folders; see the module docstring."""

  name = "photo"

  def __init__(self, root: str, split: str, *, num_bands: int, ratio: int,
               max_value: float):
    folder = os.path.join(root, "testdateset" if split == "test" else "dataset")
    require(os.path.isdir(folder), folder, "missing folder")
    labels = ("GT", "MS", "PAN")
    if split == "test" and not os.path.isdir(os.path.join(folder, "GT")):
      labels = ("MS", "PAN")  # full-resolution test data
    stems, files = checks.match_stems(
        {label: os.path.join(folder, label) for label in labels},
        IMAGE_EXTENSIONS, where=folder)
    if split != "test":
      stems = stems[split_slice(len(stems), split)]
    checks.require_nonempty(len(stems), folder, split)
    self.num_bands, self.ratio = num_bands, ratio
    self._paths = [{label: files[label][stem] for label in labels} for stem in stems]
    self._dtype = None
    self._ms_upsampled = [self._check_headers(paths) for paths in self._paths]
    self.max_value = checks.max_value_for(self._dtype, max_value)
    # The first sample's pixels, read as __getitem__ reads them (same errors):
    # cheap, and dataset-wide problems (12-bit data with max_value 2047, NaN
    # nodata in float files) show in any sample.
    first = self._paths[0]
    for label in ("PAN", "MS", "GT"):
      if label in first:
        self._read(first, label)

  def _check_headers(self, paths: dict[str, str]) -> bool:
    """Validates one sample's files; True when its MS is stored at PAN size."""
    headers = {label: image_header(path) for label, path in paths.items()}
    for label, path in paths.items():
      shape, dtype = headers[label]
      if self._dtype is None:  # the first file fixes the bit depth of the dataset
        self._dtype = dtype
      checks.require_same_dtype(dtype, self._dtype, path)
      if label == "PAN":
        require(shape[2] in (1, 3), path, f"PAN has {shape[2]} bands, expected 1")
      else:
        checks.require_bands(shape[2], self.num_bands, path)
    pan_hw = headers["PAN"][0][:2]
    if "GT" in paths:
      gt_hw = headers["GT"][0][:2]
      require(gt_hw == pan_hw, paths["GT"],
              f"GT size {gt_hw[0]}x{gt_hw[1]} differs from PAN size {pan_hw[0]}x{pan_hw[1]}")
    ms_hw = headers["MS"][0][:2]
    if ms_hw != pan_hw:
      checks.require_pan_size(ms_hw, pan_hw, self.ratio, paths["MS"])
      return False
    require(pan_hw[0] % self.ratio == 0 and pan_hw[1] % self.ratio == 0, paths["MS"],
            f"MS at PAN size {pan_hw[0]}x{pan_hw[1]} is not divisible by ratio {self.ratio}")
    return True

  def __len__(self) -> int:
    return len(self._paths)

  def _read(self, paths: dict[str, str], label: str) -> np.ndarray:
    """One file of a sample as float32 in [0, 1], its values checked."""
    image = read_image(paths[label])
    if label == "PAN":
      image = checks.single_band_pan(image, paths[label])
    return checks.to_unit(image, self.max_value, paths[label])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    paths = self._paths[index]
    sample = {"pan": self._read(paths, "PAN")}
    ms = self._read(paths, "MS")
    if self._ms_upsampled[index]:
      sample["lms"], sample["ms"] = ms, _block_mean(ms, self.ratio)
    else:
      sample["ms"] = ms
      sample["lms"] = np.clip(wald.interp23tap(ms, self.ratio), 0.0, 1.0).astype(np.float32)
    if "GT" in paths:
      sample["gt"] = self._read(paths, "GT")
    return sample
