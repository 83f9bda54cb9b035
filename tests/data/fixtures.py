"""Tiny on-disk inputs of every format, built on the fly by the data tests.

Each builder writes files and returns the arrays it wrote (in sensor units),
so tests can check loaded values exactly.
"""

import os
import struct
import types
import zlib

import h5py
import numpy as np
from PIL import Image
import tifffile

from configs import default


def data_config(**overrides):
  """`config.data` of the default config with field overrides."""
  config = default.get_config().data
  for key, value in overrides.items():
    config[key] = value
  return config


def random_image(seed, shape, max_value, dtype=np.uint8):
  """Integers in [0, max_value] covering the whole range."""
  image = np.random.default_rng(seed).integers(0, max_value + 1, shape)
  image.flat[:2] = 0, max_value
  return image.astype(dtype)


def smooth_image(seed, shape, max_value, sigma, dtype=np.uint16):
  """Gaussian-smoothed noise (correlation length ~`sigma` px) stretched to
  [1, max_value]: image-like content with no zero (nodata-free) pixel."""
  from scipy import ndimage
  noise = np.random.default_rng(seed).standard_normal(shape)
  field = ndimage.gaussian_filter(noise, (sigma, sigma) + (0,) * (len(shape) - 2),
                                  mode="wrap")
  field = (field - field.min()) / (field.max() - field.min())
  return np.rint(1 + field * (max_value - 1)).astype(dtype)


def write_image(path, image):
  """(H, W, C) array to a TIFF (any bit depth, band count) or a Pillow format."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  plane = image[..., 0] if image.shape[-1] == 1 else image
  if path.lower().endswith((".tif", ".tiff")):
    tifffile.imwrite(path, plane, photometric="minisblack", planarconfig="contig")
  else:
    Image.fromarray(plane).save(path)


def write_png16_rgb(path, image):
  """A 16-bit RGB PNG (Pillow cannot write one), byte by byte."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))
  height, width, _ = image.shape
  rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in image)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def photo_folder(root, names, *, folder="dataset", bands=4, size=32, ratio=4,
                 max_value=255, dtype=np.uint8, ms_upsampled=False,
                 exts=(".png", ".png", ".png"), labels=("GT", "MS", "PAN"), seed=0):
  """ROOT/<folder>/{GT,MS,PAN}/<name><ext>; returns {name: {label: array}}."""
  ms_size = size if ms_upsampled else size // ratio
  shapes = {"GT": (size, size, bands), "MS": (ms_size, ms_size, bands),
            "PAN": (size, size, 1)}
  written = {}
  for i, name in enumerate(names):
    written[name] = {}
    for j, (label, ext) in enumerate(zip(("GT", "MS", "PAN"), exts)):
      if label not in labels:
        continue
      image = random_image([seed, i, j], shapes[label], max_value, dtype)
      write_image(os.path.join(root, folder, label, name + ext), image)
      written[name][label] = image
  return written


def pancollection_file(path, *, count=3, bands=4, size=32, ratio=4, max_value=2047,
                       keys=("gt", "ms", "lms", "pan"), seed=0):
  """A PanCollection-style HDF5 file (NCHW float64 in DN); returns its arrays.

  `lms` overshoots the range a little, as interpolated data does.
  """
  shapes = {"gt": (count, bands, size, size),
            "ms": (count, bands, size // ratio, size // ratio),
            "lms": (count, bands, size, size), "pan": (count, 1, size, size)}
  arrays = {key: random_image([seed, i], shapes[key], max_value, np.float64)
            for i, key in enumerate(keys)}
  if "lms" in arrays:
    arrays["lms"].flat[:2] = -7.0, max_value + 9.0
  with h5py.File(path, "w") as f:
    for key, array in arrays.items():
      f.create_dataset(key, data=array)
  return arrays


def geotiff(path, image, *, origin=(500_000.0, 4_000_000.0), pixel=2.0,
            crs="EPSG:32633", nodata=None):
  """Writes (H, W, C) `image` as a north-up GeoTIFF with rasterio (and a
  nodata tag when `nodata` is given)."""
  from affine import Affine
  import rasterio
  os.makedirs(os.path.dirname(path), exist_ok=True)
  transform = Affine(pixel, 0.0, origin[0], 0.0, -pixel, origin[1])
  with rasterio.open(path, "w", driver="GTiff", height=image.shape[0],
                     width=image.shape[1], count=image.shape[2], dtype=image.dtype,
                     crs=crs, transform=transform, nodata=nodata) as dst:
    dst.write(np.moveaxis(image, -1, 0))


def geotiff_pair(root, name="scene", *, bands=4, ms_hw=(32, 32), ratio=4,
                 max_value=2047, dtype=np.uint16, ms_pixel=2.0,
                 pan_offset=(0.0, 0.0), georeferenced=True, seed=0):
  """ROOT/MS/<name>.tif + ROOT/PAN/<name>.tif of one area; returns (ms, pan).

  `pan_offset` (x, y in map units) shifts the PAN origin east and north.
  Without `georeferenced`, plain TIFFs are written (no rasterio needed).
  """
  ms = random_image([seed, 0], (*ms_hw, bands), max_value, dtype)
  pan = random_image([seed, 1], (ratio * ms_hw[0], ratio * ms_hw[1], 1), max_value, dtype)
  if not georeferenced:
    write_image(os.path.join(root, "MS", name + ".tif"), ms)
    write_image(os.path.join(root, "PAN", name + ".tif"), pan)
    return ms, pan
  origin = np.array((500_000.0, 4_000_000.0))
  geotiff(os.path.join(root, "MS", name + ".tif"), ms, origin=tuple(origin), pixel=ms_pixel)
  geotiff(os.path.join(root, "PAN", name + ".tif"), pan,
          origin=tuple(origin + pan_offset), pixel=ms_pixel / ratio)
  return ms, pan


def read_common_area(ms_path, pan_path, ratio):
  """The stored MS and PAN of a pair's common area, read whole through
  `scene.open_scene` (as predict and the GeoTIFF tiles read it), and its
  georeference (crs, transform, height, width)."""
  from pansharp_jax.data import scene as scene_lib
  with scene_lib.open_scene(ms_path, pan_path, ratio) as scene:
    ms = scene.ms_window(0, 0, scene.height // ratio, scene.width // ratio)
    pan = scene.pan_window(0, 0, scene.height, scene.width)
    profile = dict(scene.profile, height=scene.height, width=scene.width)
  return types.SimpleNamespace(ms=ms, pan=pan, profile=profile)
