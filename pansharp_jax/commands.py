"""The `--mode` commands of main.py, each a thin sequence of library calls.

Inputs are checked first (config, files, checkpoint folders), so a mistake
ends in one line before any model is built or compiled.
"""

import contextlib
import json
import os
import shutil
import tempfile

import jax
import numpy as np

from pansharp_jax import adapt as adapt_lib
from pansharp_jax import curves
from pansharp_jax import evaluate as evaluate_lib
from pansharp_jax import inference
from pansharp_jax import predict as predict_lib
from pansharp_jax import scene_metrics
from pansharp_jax.data import pipeline, sources
from pansharp_jax.errors import ConfigError, DataError
from pansharp_jax.train import loop, memory


@contextlib.contextmanager
def _written_once(path: str):
  """`path` on process 0; on the other hosts a scratch path, removed after.

  Every host runs a whole command (restoring and any collective need all of
  them) and scores the same images; one writes the files.
  """
  if jax.process_index() == 0:
    yield path
    return
  with tempfile.TemporaryDirectory() as scratch:
    yield os.path.join(scratch, os.path.basename(path))


def train(config, workdir: str):
  """Trains (resuming from WORKDIR), validates and writes the final report."""
  return loop.train_and_evaluate(config, workdir)


def probe(config, workdir: str):
  """Prints the memory table and the largest batch size that fits."""
  return memory.run_probe(config, workdir)


def evaluate(config, workdir: str, split: str = "val", *,
             protocol: str = "auto", weights: str = "latest") -> dict:
  """Scores the EMA weights on `split` beside every baseline; writes
  WORKDIR/eval/<split>/report.{json,md}, quicklooks/ and curves.png (the
  training curves of WORKDIR/metrics.jsonl against these baselines).

  protocol: 'reduced' (against GT), 'full' (no reference) or 'auto' (reduced
  where the split has GT).
  """
  inference.require_checkpoint(workdir, weights, "evaluate")
  source = sources.make_source(config.data, split)
  kind = evaluate_lib.check_scorable(source, f"{split} split", int(config.data.ratio),
                                     protocol)
  restored = inference.restore(config, workdir, weights, "evaluate")
  with _written_once(os.path.join(workdir, "eval", split)) as out_dir:
    looks = os.path.join(out_dir, "quicklooks")
    shutil.rmtree(looks, ignore_errors=True)  # panels of an earlier evaluation
    try:
      rows = evaluate_lib.evaluate_source(
          restored.batch_fn(), source,
          pipeline.eval_batches(source, int(config.eval_batch_size)), full=True,
          sensor=config.data.sensor, quicklook_dir=looks, protocol=kind)
    except (DataError, ConfigError):
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise evaluate_lib.failed(f"evaluating the {split} split", e,
                                "no report written; the checkpoints are unchanged") from e
    report = evaluate_lib.write_report(rows, out_dir, {
        "step": restored.step, "weights": weights, "split": split,
        "images": len(rows[evaluate_lib.MODEL]), "protocol": evaluate_lib.PROTOCOLS[kind],
        "source": config.data.source, "sensor": config.data.sensor,
        "ratio": int(config.data.ratio), "data_range": float(source.max_value),
        "trained_size": int(config.data.image_size), **evaluate_lib.coverage_of(source)})
    curves.write_curves(os.path.join(out_dir, "curves.png"),
                        os.path.join(workdir, "metrics.jsonl"), report["mean"], split)
  return report


def predict(config, workdir: str, ms_path: str, pan_path: str, out_path: str,
            *, weights: str = "latest", progress: bool = True) -> str:
  """Fuses a whole MS + PAN scene into `out_path` (tiles, nodata and output
  from config.predict) and scores it into `<out>_metrics.json`."""
  options = predict_lib.options_from_config(config)
  scene = predict_lib.open_scene(config, ms_path, pan_path)
  try:
    restored = inference.restore(config, workdir, weights, "predict with")
    with _written_once(out_path) as path:
      _fuse(config, scene, restored, options, path, progress)
  finally:
    scene.close()
  return out_path


def adapt(config, workdir: str, ms_path: str, pan_path: str, out_path: str,
          *, weights: str = "latest", progress: bool = True) -> dict:
  """Fine-tunes the model on the scene (adapt.py), then fuses and scores it
  as predict does; `<out>_metrics.json` also holds the full-resolution
  indices on the adaptation's fixed tiles before and after."""
  options = predict_lib.options_from_config(config)
  scene = predict_lib.open_scene(config, ms_path, pan_path)
  try:
    restored = inference.restore(config, workdir, weights, "adapt")
    adapted, summary = adapt_lib.adapt_scene(restored, scene, config,
                                             progress=progress)
    summary = {"weights": weights, "step": restored.step, **summary}
    with _written_once(out_path) as path:
      metrics_path = _fuse(config, scene, adapted, options, path, progress)
      with open(metrics_path) as f:
        scores = json.load(f)
      with open(metrics_path, "w") as f:
        json.dump({**scores, "adaptation": summary}, f, indent=2)
  finally:
    scene.close()
  print(f"adapted in {summary['steps']} steps ({summary['seconds']} s): QNR "
        f"{summary['before']['qnr']:.4f} -> {summary['after']['qnr']:.4f} on "
        f"{summary['tiles']} tiles")
  return summary


def _fuse(config, scene, restored, options, out_path, progress) -> str:
  """Writes the fused scene, its quicklook and `<out>_metrics.json`; returns
  the metrics path."""
  look = predict_lib.predict_scene(scene, restored.batch_fn(), options, out_path,
                                   config.predict.compress, progress)
  scores = scene_metrics.write_metrics(scene, out_path, sensor=config.data.sensor,
                                       baselines=config.predict.baselines,
                                       progress=progress)
  print(f"wrote {out_path} ({scene.height}x{scene.width}, {scene.num_bands} bands, "
        f"{np.dtype(scene.dtype).name}), {look} and {scores}")
  return scores
