"""Throughput and peak RSS of whole-scene prediction against scene size.

Each size runs in a fresh subprocess (peak RSS is per process): a synthetic
uint16 MS + PAN GeoTIFF pair is written, then `predict.predict_scene` tiles it
into a GeoTIFF and `scene_metrics.write_metrics` scores it (the two steps of
`--mode=predict`). `--model=identity` returns the tiles' lms (I/O, tiling,
blending and metrics only); `tiny` and `base` run the real Pansharpener of
configs/default.py and configs/base_256.py (float32) with random parameters.
The model is compiled before the clock starts (one warm-up batch); tiles/s
and MPix/s are those of prediction, the metrics pass is timed apart.

  PYTHONPATH=. python benchmarks/predict_memory.py --sizes 2048 8192 --model tiny
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


def _batch_fn(model, tile, batch):
  """The model's batch function, compiled by one warm-up batch; compile seconds."""
  if model == "identity":
    return (lambda b: b["lms"]), 0.0
  import jax  # pylint: disable=import-outside-toplevel
  from configs import base_256, default  # pylint: disable=import-outside-toplevel
  from pansharp_jax import inference  # pylint: disable=import-outside-toplevel
  from pansharp_jax.models import registry  # pylint: disable=import-outside-toplevel
  config = (default if model == "tiny" else base_256).get_config()
  config.model.dtype = "float32"
  net = registry.build_model(config.model, 4)
  z = np.zeros((batch, tile, tile, 1), np.float32)
  inputs = {"ms": z[:, ::4, ::4].repeat(4, -1), "pan": z, "lms": z.repeat(4, -1)}
  shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), inputs["ms"][:1],
                                           inputs["pan"][:1], inputs["lms"][:1]))
  variables = jax.tree.map(lambda v: 0.02 * np.ones(v.shape, v.dtype), shapes)
  fn = inference.Restored(net, variables, step=0).batch_fn()
  start = time.time()
  jax.block_until_ready(fn(inputs))
  return fn, time.time() - start


def _child(size, model, tile, overlap, batch, metrics):
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from pansharp_jax import predict, scene_metrics  # pylint: disable=import-outside-toplevel
  from pansharp_jax.data.scene import GeoTiffScene  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as root:
    _write_pair(root, size)
    fn, compile_s = _batch_fn(model, tile, batch)
    base = _peak_rss_mb()
    scene = GeoTiffScene(os.path.join(root, "ms.tif"), os.path.join(root, "pan.tif"),
                         4, 2047.0)
    out = os.path.join(root, "fused.tif")
    start = time.time()
    predict.predict_scene(scene, fn, predict.TileOptions(tile, overlap, batch), out,
                          progress=False)
    seconds = time.time() - start
    start = time.time()
    if metrics:
      scene_metrics.write_metrics(scene, out, sensor="QB", progress=False)
    scene.close()
    tiles = len(predict.tile_starts(size, tile, overlap)) ** 2
    print(json.dumps({
        "size": size, "model": model, "tiles": tiles, "compile_s": round(compile_s, 1),
        "predict_s": round(seconds, 1), "tiles_per_s": round(tiles / seconds, 2),
        "mpix_per_s": round(size * size / 1e6 / seconds, 3),
        "metrics_s": round(time.time() - start, 1) if metrics else None,
        "rss_before_mb": round(base), "peak_rss_mb": round(_peak_rss_mb()),
        "output_mb": round(os.path.getsize(out) / 2**20, 1)}))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
  parser.add_argument("--model", choices=["identity", "tiny", "base"], default="identity")
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--overlap", type=int, default=64)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--no-metrics", dest="metrics", action="store_false")
  parser.add_argument("--child", type=int, default=0)
  args = parser.parse_args()
  if args.child:
    _child(args.child, args.model, args.tile, args.overlap, args.batch, args.metrics)
    return
  print("| PAN px | model | tiles | compile s | predict s | tiles/s | MPix/s | metrics s "
        "| RSS before (MB) | peak RSS (MB) | output (MB) |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for size in args.sizes:
    out = subprocess.run([sys.executable, __file__, f"--child={size}", f"--model={args.model}",
                          f"--tile={args.tile}", f"--overlap={args.overlap}",
                          f"--batch={args.batch}", *([] if args.metrics else ["--no-metrics"])],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"| {size}x{size} | {r['model']} | {r['tiles']} | {r['compile_s']} | "
          f"{r['predict_s']} | {r['tiles_per_s']} | {r['mpix_per_s']} | {r['metrics_s']} | "
          f"{r['rss_before_mb']} | {r['peak_rss_mb']} | {r['output_mb']} |", flush=True)


if __name__ == "__main__":
  main()
