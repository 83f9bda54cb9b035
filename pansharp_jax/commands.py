"""The `--mode` commands of main.py, each a thin sequence of library calls.

Inputs are checked first (config, files, checkpoint folders), so a mistake
ends in one line before any model is built or compiled.
"""

import os

import numpy as np

from pansharp_jax import evaluate as evaluate_lib
from pansharp_jax import inference
from pansharp_jax import predict as predict_lib
from pansharp_jax import scene_metrics
from pansharp_jax.data import pipeline, sources
from pansharp_jax.train import loop, memory


def train(config, workdir: str):
  """Trains (resuming from WORKDIR), validates and writes the final report."""
  return loop.train_and_evaluate(config, workdir)


def probe(config, workdir: str):
  """Prints the memory table and the largest batch size that fits."""
  return memory.run_probe(config, workdir)


def evaluate(config, workdir: str, split: str = "val") -> dict:
  """Scores the newest checkpoint's EMA weights on `split` beside every
  baseline; writes WORKDIR/eval/report.{json,md} and quicklooks."""
  inference.require_checkpoint(workdir, "latest", "evaluate")
  source = sources.make_source(config.data, split)
  restored = inference.restore(config, workdir, "latest", "evaluate")
  out_dir = os.path.join(workdir, "eval")
  rows = evaluate_lib.evaluate_source(
      restored.batch_fn(), source,
      pipeline.eval_batches(source, int(config.eval_batch_size)), full=True,
      sensor=config.data.sensor, quicklook_dir=os.path.join(out_dir, "quicklooks"))
  return evaluate_lib.write_report(rows, out_dir, {
      "step": restored.step, "split": split, "source": config.data.source,
      "sensor": config.data.sensor, "ratio": int(config.data.ratio),
      "data_range": float(source.max_value)})


def predict(config, workdir: str, ms_path: str, pan_path: str, out_path: str,
            *, weights: str = "latest", progress: bool = True) -> str:
  """Fuses a whole MS + PAN scene into `out_path` (tiles, nodata and output
  from config.predict) and scores it into `<out>_metrics.json`."""
  options = predict_lib.options_from_config(config)
  scene = predict_lib.open_scene(config, ms_path, pan_path)
  try:
    restored = inference.restore(config, workdir, weights, "predict with")
    look = predict_lib.predict_scene(scene, restored.batch_fn(), options, out_path,
                                     config.predict.compress, progress)
    scores = scene_metrics.write_metrics(scene, out_path, sensor=config.data.sensor,
                                         baselines=config.predict.baselines,
                                         progress=progress)
  finally:
    scene.close()
  print(f"wrote {out_path} ({scene.height}x{scene.width}, {scene.num_bands} bands, "
        f"{np.dtype(scene.dtype).name}), {look} and {scores}")
  return out_path
