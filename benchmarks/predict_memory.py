"""Peak RSS of whole-scene prediction against scene size.

Each size runs in a fresh subprocess (peak RSS is per process): a synthetic
uint16 MS + PAN GeoTIFF pair is written, then `predict.predict_scene` tiles it
into a GeoTIFF. `--model=identity` returns the tiles' lms (I/O, tiling and
blending only); `--model=tiny` runs the tiny Pansharpener with random params.

  PYTHONPATH=. python benchmarks/predict_memory.py --sizes 1024 2048 4096
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_pair(root, size, bands=4):
  from tests.data import fixtures  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  ms = rng.integers(0, 2048, (size // 4, size // 4, bands)).astype(np.uint16)
  fixtures.geotiff(os.path.join(root, "ms.tif"), ms, pixel=2.0)
  # Written in strips so the writer itself stays small.
  import rasterio  # pylint: disable=import-outside-toplevel
  from affine import Affine  # pylint: disable=import-outside-toplevel
  with rasterio.open(os.path.join(root, "pan.tif"), "w", driver="GTiff", height=size,
                     width=size, count=1, dtype="uint16", crs="EPSG:32633",
                     transform=Affine(0.5, 0, 500_000.0, 0, -0.5, 4_000_000.0)) as dst:
    for row in range(0, size, 256):
      rows = min(256, size - row)
      dst.write(rng.integers(0, 2048, (1, rows, size)).astype(np.uint16),
                window=rasterio.windows.Window(0, row, size, rows))


def _child(size, model, tile, overlap, batch):
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax  # pylint: disable=import-outside-toplevel
  from pansharp_jax import inference, predict  # pylint: disable=import-outside-toplevel
  from pansharp_jax.data.scene import GeoTiffScene  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as root:
    _write_pair(root, size)
    base = _peak_rss_mb()
    scene = GeoTiffScene(os.path.join(root, "ms.tif"),
                                 os.path.join(root, "pan.tif"), 4, 2047.0)
    if model == "identity":
      fn = lambda b: b["lms"]
    else:
      from configs import default  # pylint: disable=import-outside-toplevel
      from pansharp_jax.models import registry  # pylint: disable=import-outside-toplevel
      net = registry.build_model(default.get_config().model, 4)
      z = np.zeros((1, tile, tile, 1), np.float32)
      shapes = jax.eval_shape(lambda: net.init(
          jax.random.PRNGKey(0), z[:, ::4, ::4].repeat(4, -1), z, z.repeat(4, -1)))
      leaves, tree = jax.tree.flatten(shapes)
      variables = jax.tree.unflatten(tree, [0.02 * np.ones(v.shape, v.dtype) for v in leaves])
      fn = inference.Restored(net, variables, step=0).batch_fn()
    start = time.time()
    predict.predict_scene(scene, fn, predict.TileOptions(tile, overlap, batch),
                          os.path.join(root, "fused.tif"), progress=False)
    scene.close()
    print(json.dumps({"size": size, "model": model, "seconds": round(time.time() - start, 1),
                      "rss_before_mb": round(base), "peak_rss_mb": round(_peak_rss_mb())}))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
  parser.add_argument("--model", choices=["identity", "tiny"], default="identity")
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--overlap", type=int, default=64)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--child", type=int, default=0)
  args = parser.parse_args()
  if args.child:
    _child(args.child, args.model, args.tile, args.overlap, args.batch)
    return
  print("| PAN px | model | seconds | RSS before predict (MB) | peak RSS (MB) |")
  print("|---|---|---|---|---|")
  for size in args.sizes:
    out = subprocess.run([sys.executable, __file__, f"--child={size}", f"--model={args.model}",
                          f"--tile={args.tile}", f"--overlap={args.overlap}",
                          f"--batch={args.batch}"], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"| {size}x{size} | {r['model']} | {r['seconds']} | {r['rss_before_mb']} | "
          f"{r['peak_rss_mb']} |")


if __name__ == "__main__":
  main()
