"""The scene metrics beside the toolbox's on whole scenes: the size of the
difference their mirrored scene edges make (docs/predict.md).

  python -m benchmarks.scene_edges

For real-like scenes (`synthetic.sensor_pair`, QuickBird MTFs, 11-bit DN)
fused by GSA, prints Markdown rows: the blocks within `edge_reach` of an edge
and D_lambda, D_s, Khan's D_lambda and QNR by `scene_metrics.score_scene`
vs `metrics.evaluate_full` on the whole arrays.
"""

import os
import tempfile

from absl import app
import numpy as np

from pansharp_jax import baselines, metrics, scene_metrics
from pansharp_jax.data import synthetic, wald
from pansharp_jax.data.scene import ArrayScene, FusedImage, SceneWriter

# (ratio, PAN side) of each scene.
SCENES = ((4, 256), (8, 256), (4, 512), (4, 1024))
_INDICES = ("d_lambda", "d_s", "d_lambda_khan", "qnr")
_MAX = 2047


def _scores(ratio: int, size: int, folder: str) -> tuple[dict, dict]:
  """(score_scene's result, evaluate_full's indices) of one GSA-fused scene."""
  rng = np.random.default_rng([7, size, ratio])
  ms, pan = synthetic.sensor_pair(rng, size, 4, wald.ms_gains("QB", 4), ratio)
  ms, pan = (np.rint(a * _MAX).astype(np.uint16) for a in (ms, pan))
  pan = pan.reshape(size, size, 1)
  scene = ArrayScene(ms, pan, ratio, _MAX)
  fused = np.clip(baselines.gsa(ms.astype(np.float64), pan[..., 0].astype(np.float64),
                                ratio=ratio, sensor="QB"), 0, _MAX)
  path = os.path.join(folder, f"fused_{ratio}_{size}.tif")
  writer = SceneWriter(path, scene)
  writer.write(0, (fused / _MAX).astype(np.float32))
  writer.close()
  image = FusedImage(path)
  try:
    ours = scene_metrics.score_scene(scene, image, sensor="QB", progress=False)
    stored = image.read(0, 0, size, size).astype(np.float64)
  finally:
    image.close()
  toolbox = metrics.evaluate_full(stored, ms.astype(np.float64),
                                  pan[..., 0].astype(np.float64), ratio=ratio, sensor="QB")
  return ours, toolbox


def main(argv):
  del argv
  print("| scene (PAN px), ratio | blocks near an edge | "
        + " | ".join(_INDICES) + " |\n|---|---|" + "---|" * len(_INDICES))
  with tempfile.TemporaryDirectory() as folder:
    for ratio, size in SCENES:
      ours, toolbox = _scores(ratio, size, folder)
      cells = [f"{ours['model'][k]:.4f} vs {toolbox[k]:.4f}" for k in _INDICES]
      print(f"| {size} x {size}, {ratio} | {ours['blocks_near_edge']} of "
            f"{ours['blocks_scored']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  app.run(main)
