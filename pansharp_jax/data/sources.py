"""Picks the data source named by `config.data.source` for a split."""

from pansharp_jax.data import geotiff_tiles, pancollection, photo, synthetic
from pansharp_jax.errors import require

SPLITS = ("train", "val", "test")


def make_source(data_config, split: str):
  """A source of {gt, ms, lms, pan} samples for 'train', 'val' or 'test'.

  Args:
    data_config: `config.data` (source, root, *_file, num_bands, ratio,
      max_value, sensor, image_size).
    split: 'train', 'val' or 'test'.

  Returns:
    An object with `__len__`, `__getitem__` and the attributes `max_value`,
    `num_bands`, `ratio` and `name`.
  """
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}, expected one of {SPLITS}")
  kind = data_config.source
  if kind == "synthetic":
    return synthetic.SyntheticSource(data_config, split)
  common = dict(num_bands=int(data_config.num_bands), ratio=int(data_config.ratio),
                max_value=float(data_config.max_value))
  if kind == "h5":
    field = f"{split}_file"
    require(bool(data_config[field]), f"config.data.{field}", "not set")
    # Full-resolution test files have no GT; train and val need it.
    return pancollection.PanCollectionSource(
        data_config[field], require_gt=split != "test", **common)
  require(bool(data_config.root), "config.data.root", "not set")
  if kind == "photo":
    return photo.PhotoFolderSource(data_config.root, split, **common)
  if kind == "geotiff":
    return geotiff_tiles.GeoTiffWaldSource(
        data_config.root, split, sensor=data_config.sensor,
        tile_size=int(data_config.image_size), **common)
  raise ValueError(f"config.data.source: unknown source {kind!r}")
