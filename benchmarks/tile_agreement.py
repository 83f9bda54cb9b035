"""How much two overlapping tiles' predictions disagree, per trained run.

    python -m benchmarks.tile_agreement --runs=runs/presets/ikonos/residual_s0,...

`predict` fuses a scene tile by tile and blends neighbours over their
overlap (docs/predict.md). Where two tiles' predictions of the same pixels
differ, the blend spreads the difference over the ramp instead of leaving a
step, but a large one would still show. Ours sees each whole tile (global
attention and scans) and, with `model.input_norm`, each tile's own mean, so
the same pixel gets a different input context in each tile. For each run
(its `config.json` and best export), this renders `--val_scenes` validation
scenes of its data at `--scene_size` px, cuts `--tile` px tiles every
`--tile - --overlap` px, predicts them, and prints a Markdown row: the mean
absolute difference of horizontally neighbouring tiles' outputs in their
overlap, the mean correction |output - lms| there, and their ratio.
"""

import json
import os

from absl import app
from absl import flags
import ml_collections
import numpy as np

from pansharp_jax import inference
from pansharp_jax.data import sources

RUNS = flags.DEFINE_list("runs", None, "Run directories (config.json, best/).")
VAL_SCENES = flags.DEFINE_integer("val_scenes", 6, "Validation scenes per run.")
SCENE_SIZE = flags.DEFINE_integer("scene_size", 128, "Scene side (PAN px).")
TILE = flags.DEFINE_integer("tile", 32, "Tile side (PAN px).")
OVERLAP = flags.DEFINE_integer("overlap", 16, "Overlap of neighbours (PAN px).")


def tile_batch(sample: dict, tile: int, step: int, ratio: int):
  """The tiles of one {ms, pan, lms} sample starting every `step` px, as a
  batch, and their (row, col) starts."""
  size = sample["pan"].shape[0]
  starts = [(y, x) for y in range(0, size - tile + 1, step)
            for x in range(0, size - tile + 1, step)]
  crop = lambda a, y, x, s: a[y // s:(y + tile) // s, x // s:(x + tile) // s]
  batch = {"ms": np.stack([crop(sample["ms"], y, x, ratio) for y, x in starts]),
           "pan": np.stack([crop(sample["pan"], y, x, 1) for y, x in starts]),
           "lms": np.stack([crop(sample["lms"], y, x, 1) for y, x in starts])}
  return batch, starts


def overlap_disagreement(outputs, lms, starts, tile: int, step: int):
  """(mean |A - B|, mean of |A - lms| and |B - lms|) over the overlap
  columns of every pair of horizontal neighbours A, B."""
  index = {start: k for k, start in enumerate(starts)}
  overlap = tile - step
  differences, corrections = [], []
  for (y, x), a in index.items():
    b = index.get((y, x + step))
    if b is None:
      continue
    out_a, out_b = outputs[a][:, step:], outputs[b][:, :overlap]
    base = lms[a][:, step:]
    differences.append(np.abs(out_a - out_b).mean())
    corrections.append(0.5 * (np.abs(out_a - base).mean() +
                              np.abs(out_b - base).mean()))
  return float(np.mean(differences)), float(np.mean(corrections))


def _run_row(run: str) -> str:
  with open(os.path.join(run, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  config.data.synthetic.scene_size = SCENE_SIZE.value
  source = sources.make_source(config.data, "val")
  predict = inference.restore(config, run, "best").batch_fn()
  ratio, step = int(config.data.ratio), TILE.value - OVERLAP.value
  differences, corrections = [], []
  for i in range(VAL_SCENES.value):
    batch, starts = tile_batch(source[i], TILE.value, step, ratio)
    outputs = np.asarray(predict(batch))
    difference, correction = overlap_disagreement(outputs, batch["lms"], starts,
                                                  TILE.value, step)
    differences.append(difference)
    corrections.append(correction)
  difference, correction = np.mean(differences), np.mean(corrections)
  model = config.model
  ours = model.name == "pansharpener"  # the CNNs take no input_norm or dim
  return (f"| {run} | {model.name} | {model.get('input_norm', 'none') if ours else '-'} | "
          f"{model.get('dim', 0) if ours else '-'} | "
          f"{difference:.2e} | {correction:.2e} | {difference / correction:.3f} |")


def main(argv):
  del argv
  print(f"{TILE.value} px tiles overlapping by {OVERLAP.value} px, "
        f"{VAL_SCENES.value} validation scenes of {SCENE_SIZE.value} px per run\n")
  print("| run | model | input_norm | dim | mean abs A - B | mean correction | ratio |")
  print("|---|---|---|---:|---:|---:|---:|")
  for run in RUNS.value:
    print(_run_row(run), flush=True)


if __name__ == "__main__":
  flags.mark_flag_as_required("runs")
  app.run(main)
