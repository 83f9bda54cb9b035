"""benchmarks/tile_agreement.py: tiles cut as predict cuts them, and the
disagreement of neighbouring tiles' outputs over their overlap."""

import numpy as np

from benchmarks import tile_agreement

TILE, STEP, RATIO = 8, 4, 2


def _sample(rng, size=16):
  return {"ms": rng.random((size // RATIO, size // RATIO, 3)),
          "pan": rng.random((size, size, 1)), "lms": rng.random((size, size, 3))}


def test_tiles_are_the_crops_at_their_starts():
  sample = _sample(np.random.default_rng(0))
  batch, starts = tile_agreement.tile_batch(sample, TILE, STEP, RATIO)
  assert starts == [(y, x) for y in (0, 4, 8) for x in (0, 4, 8)]
  k = starts.index((4, 8))
  np.testing.assert_array_equal(batch["pan"][k], sample["pan"][4:12, 8:16])
  np.testing.assert_array_equal(batch["lms"][k], sample["lms"][4:12, 8:16])
  np.testing.assert_array_equal(batch["ms"][k], sample["ms"][2:6, 4:8])


def test_a_pixelwise_model_agrees_with_itself():
  rng = np.random.default_rng(1)
  batch, starts = tile_agreement.tile_batch(_sample(rng), TILE, STEP, RATIO)
  outputs = 2.0 * batch["lms"] + batch["pan"]  # depends on each pixel only
  difference, correction = tile_agreement.overlap_disagreement(
      outputs, batch["lms"], starts, TILE, STEP)
  assert difference == 0.0
  left = [k for k, (y, x) in enumerate(starts) if (y, x + STEP) in starts]
  expected = np.mean([np.abs(outputs[k] - batch["lms"][k])[:, STEP:].mean()
                      for k in left])
  np.testing.assert_allclose(correction, expected)


def test_per_tile_offsets_disagree_by_their_differences():
  rng = np.random.default_rng(2)
  batch, starts = tile_agreement.tile_batch(_sample(rng), TILE, STEP, RATIO)
  offsets = {start: 0.01 * (k + 1) for k, start in enumerate(starts)}
  outputs = batch["lms"] + np.array([offsets[s] for s in starts])[:, None, None, None]
  difference, correction = tile_agreement.overlap_disagreement(
      outputs, batch["lms"], starts, TILE, STEP)
  pairs = [(offsets[(y, x)], offsets[(y, x + STEP)]) for y, x in starts
           if (y, x + STEP) in offsets]
  assert len(pairs) == 6
  np.testing.assert_allclose(difference, np.mean([abs(a - b) for a, b in pairs]))
  np.testing.assert_allclose(correction, np.mean([(a + b) / 2 for a, b in pairs]))
