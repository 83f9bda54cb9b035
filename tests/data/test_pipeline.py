"""The grain pipeline: batch shapes, paired augmentation, resumable iteration
and global batches that do not depend on the process count."""

import numpy as np
import pytest

from configs import default
from pansharp_jax.data import pipeline
from pansharp_jax.errors import ConfigError, DataError


class _PairedSource:
  """Samples whose parts are exact functions of GT, so pairing is checkable.

  ms is the 4x4 block mean of GT (equivariant under flips and rot90), lms is
  GT itself and pan is the band mean of GT.
  """

  num_bands, ratio, max_value = 4, 4, 1.0

  def __len__(self):
    return 6

  def __getitem__(self, i):
    rng = np.random.default_rng(i)
    gt = rng.random((48, 48, 4)).astype(np.float32)
    return {"gt": gt, "lms": gt.copy(),
            "ms": gt.reshape(12, 4, 12, 4, 4).mean((1, 3)),
            "pan": gt.mean(-1, keepdims=True)}


def _config(image_size=32):
  config = default.get_config().data
  config.image_size = image_size
  return config


def test_batch_shapes():
  ds = pipeline.train_dataset(_PairedSource(), _config(), batch_size=3, seed=0)
  batch = next(iter(ds))
  assert batch["gt"].shape == (3, 32, 32, 4)
  assert batch["ms"].shape == (3, 8, 8, 4)
  assert batch["lms"].shape == (3, 32, 32, 4)
  assert batch["pan"].shape == (3, 32, 32, 1)


def test_augmentation_keeps_pairs_aligned():
  ds = pipeline.train_dataset(_PairedSource(), _config(), batch_size=2, seed=1)
  it = iter(ds)
  for _ in range(8):
    b = next(it)
    np.testing.assert_array_equal(b["lms"], b["gt"])
    np.testing.assert_allclose(b["pan"], b["gt"].mean(-1, keepdims=True), atol=1e-6)
    block = b["gt"].reshape(2, 8, 4, 8, 4, 4).mean((2, 4))
    np.testing.assert_allclose(b["ms"], block, atol=1e-6)


def test_augmentation_changes_geometry():
  """With flips/rot90 on, the crops are not all in the source's orientation."""
  source = _PairedSource()
  config = _config(image_size=48)  # no cropping, so only the geometry varies
  it = iter(pipeline.train_dataset(source, config, batch_size=1, seed=0))
  originals = [source[i]["gt"] for i in range(len(source))]
  transformed = 0
  for _ in range(12):
    gt = next(it)["gt"][0]
    transformed += not any(np.array_equal(gt, o) for o in originals)
  assert transformed > 0


def test_iterator_state_resumes_exactly():
  ds = pipeline.train_dataset(_PairedSource(), _config(), batch_size=2, seed=3)
  it = iter(ds)
  next(it)
  state = it.get_state()
  expected = [next(it)["gt"] for _ in range(3)]
  it2 = iter(ds)
  it2.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(it2)["gt"], want)


def test_eval_batches_cover_split_in_order():
  source = _PairedSource()
  batches = list(pipeline.eval_batches(source, 4))
  assert [b["gt"].shape[0] for b in batches] == [4, 2]
  np.testing.assert_array_equal(batches[1]["gt"][1], source[5]["gt"])


def test_crop_larger_than_the_samples_is_a_data_error():
  ds = pipeline.train_dataset(_PairedSource(), _config(image_size=64),
                              batch_size=1, seed=0)
  with pytest.raises(DataError, match=r"^config\.data\.image_size: 64 px crops "
                     r"do not fit a 48x48 px sample"):
    next(iter(ds))


def _global_batches(process_count, batch_size=4, steps=3, start_step=0, seed=5):
  """The global batches of `steps` steps as `process_count` hosts load them:
  each host's rows, concatenated in process order."""
  hosts = [iter(pipeline.train_dataset(
      _PairedSource(), _config(), batch_size=batch_size, seed=seed,
      process_index=p, process_count=process_count, start_step=start_step))
      for p in range(process_count)]
  return [{k: np.concatenate([b[k] for b in rows]) for k in pipeline.KEYS}
          for rows in zip(*[[next(h) for _ in range(steps)] for h in hosts])]


def test_global_batches_do_not_depend_on_the_process_count():
  """1, 2 and 4 hosts train on the same global batches (each host its own
  rows of them): the shuffle and the augmentation are drawn per global index."""
  one = _global_batches(1)
  for count in (2, 4):
    for want, got in zip(one, _global_batches(count)):
      for key in pipeline.KEYS:
        np.testing.assert_array_equal(got[key], want[key])


class _SameSampleSource(_PairedSource):
  """Every sample is sample 0: rows differ only by their augmentation."""

  def __getitem__(self, i):
    return super().__getitem__(0)


def test_hosts_do_not_share_the_augmentation_stream():
  """Host 1's i-th sample must not get host 0's crop, flip and rotation (as
  it did when every host drew its augmentation with the same seed)."""
  rows = [next(iter(pipeline.train_dataset(
      _SameSampleSource(), _config(), batch_size=8, seed=5, process_index=p,
      process_count=2)))["gt"] for p in range(2)]
  assert not all(np.array_equal(a, b) for a, b in zip(*rows))


def test_start_step_is_the_position_of_a_resume():
  """A run resumed at step k (on any process count) gets the batches of
  steps k + 1, ... of the uninterrupted run."""
  whole = _global_batches(1, steps=5)
  for count in (1, 2):
    resumed = _global_batches(count, steps=2, start_step=3)
    for want, got in zip(whole[3:], resumed):
      np.testing.assert_array_equal(got["gt"], want["gt"])


def test_batch_that_does_not_split_over_the_processes_is_a_config_error():
  with pytest.raises(ConfigError, match=r"^config\.batch_size: 3 does not split "
                     r"evenly over 2 processes"):
    pipeline.train_dataset(_PairedSource(), _config(), batch_size=3, seed=0,
                           process_index=0, process_count=2)
