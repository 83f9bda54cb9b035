"""grain input pipelines: shuffled, augmented training batches and ordered eval batches.

Training: shuffle -> repeat -> random crop + paired flips/rot90/jitter -> batch.
All four arrays of a sample get the same geometric transform, so GT, MS, LMS
and PAN stay aligned.

The shuffle and each sample's augmentation are drawn for the global sample
index (grain derives a MapDataset's per-index RNG from the seed and the
index), so the sequence of global batches is a function of (seed, step)
alone: each host materialises its own rows of each global batch, and 1 host
or N hosts train on the same batches. Resuming is starting at a step.
"""

import dataclasses

import grain
import numpy as np

from pansharp_jax.errors import ConfigError, require

KEYS = ("gt", "ms", "lms", "pan")


@dataclasses.dataclass(frozen=True)
class CropAugment(grain.transforms.RandomMap):
  """Random crop of `size` PAN pixels (aligned to the MS grid) plus paired augmentation."""

  size: int
  ratio: int
  flips: bool = True
  rot90: bool = True
  jitter: float = 0.0

  def random_map(self, sample, rng: np.random.Generator):
    height, width = sample["pan"].shape[:2]
    require(height >= self.size and width >= self.size, "config.data.image_size",
            f"{self.size} px crops do not fit a {height}x{width} px sample; "
            "use a smaller crop")
    # Offsets on the MS grid so the MS crop is exactly the PAN crop / ratio.
    top = self.ratio * rng.integers(0, (height - self.size) // self.ratio + 1)
    left = self.ratio * rng.integers(0, (width - self.size) // self.ratio + 1)
    out = {}
    for key in KEYS:
      if key not in sample:
        continue
      scale = self.ratio if key == "ms" else 1
      t, l, s = top // scale, left // scale, self.size // scale
      out[key] = sample[key][t:t + s, l:l + s]
    k = rng.integers(0, 4) if self.rot90 else 0
    flip = self.flips and rng.random() < 0.5
    gain, bias = 1.0, 0.0
    if self.jitter > 0:
      gain = 1.0 + rng.uniform(-self.jitter, self.jitter)
      bias = rng.uniform(-self.jitter, self.jitter) / 2
    for key, value in out.items():
      value = np.rot90(value, k, axes=(0, 1))
      if flip:
        value = value[:, ::-1]
      if key != "pan":  # brightness/contrast act on the MS radiometry only
        value = np.clip(value * gain + bias, 0.0, 1.0)
      out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def train_dataset(source, data_config, *, batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  start_step: int = 0):
  """Infinite IterDataset of this host's rows of the global training batches.

  `batch_size` is the global batch; host `process_index` of `process_count`
  gets rows [p * b, (p + 1) * b) of each, b = batch_size / process_count.
  The first batch is the one of step `start_step + 1` (0: the start).
  """
  if batch_size % process_count:
    raise ConfigError(f"config.batch_size: {batch_size} does not split evenly "
                      f"over {process_count} processes")
  augment = CropAugment(size=int(data_config.image_size),
                        ratio=int(data_config.ratio),
                        flips=bool(data_config.augment.flips),
                        rot90=bool(data_config.augment.rot90),
                        jitter=float(data_config.augment.jitter))
  ds = grain.MapDataset.source(source)
  ds = ds.shuffle(seed=seed).repeat().random_map(augment, seed=seed)
  # Consecutive blocks of a host's rows; global batch k is blocks
  # k * count ... k * count + count - 1, and this host takes its own.
  ds = ds.batch(batch_size // process_count, drop_remainder=True)
  ds = ds[process_index::process_count][start_step:]
  ds = ds.to_iter_dataset()
  workers = int(data_config.worker_count)
  if workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return ds


def eval_batches(source, batch_size: int):
  """Ordered batches over a whole split: runs of up to `batch_size`
  consecutive samples of one shape (test images may differ in size, and are
  scored whole), so a batch can be smaller."""
  run = []
  for index in range(len(source)):
    sample = source[index]
    shapes = {k: v.shape for k, v in sample.items()}
    if run and (len(run) == batch_size or shapes != {k: v.shape for k, v in run[0].items()}):
      yield _stack(run)
      run = []
    run.append(sample)
  if run:
    yield _stack(run)


def _stack(samples: list[dict]) -> dict[str, np.ndarray]:
  return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
