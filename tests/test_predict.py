"""Tiled whole-scene prediction: blending, exactness, GeoTIFF output, CLI.

What equality is achievable: the Pansharpener's receptive field is global
(global cross attention and S6 scans over whole rows/columns), so a tile's
output depends on the whole tile and tiled inference cannot equal one pass
anywhere exactly. Two properties are tested instead:
- with a model of local receptive field (TinyNet: two 3x3 convs, radius 2),
  tiled == one pass to 1e-5 at every pixel that is >= 2 px from the interior
  edges of every tile with non-zero weight there ("away from seams"), on a
  1000x1300 scene that is not a multiple of the tile;
- with the real (tiny) Pansharpener, the output is exactly the normalised
  blend of the per-tile predictions, each tile seeing exactly its slice of the
  whole-scene inputs, and equals the tile's own prediction where a single
  tile has weight 1.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from pansharp_jax import inference, predict
from pansharp_jax.data import checks, wald
from pansharp_jax.data.scene import LMS_HALO, ArrayScene, GeoTiffScene
from pansharp_jax.models import registry
from tests.data import fixtures

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "train"))
import train_tiny  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX = 2047


def _scene(h, w, bands=4, seed=0):
  ms = fixtures.random_image([seed, 0], (h // 4, w // 4, bands), MAX, np.uint16)
  pan = fixtures.random_image([seed, 1], (h, w, 1), MAX, np.uint16)
  return ms, pan


def _upsample_whole(ms, ratio=4, halo=LMS_HALO):
  """The lms a tile must match: interp23tap of the whole MS (in [0, 1])
  after mirroring `halo` pixels on every side, cropped back, clipped."""
  padded = np.pad(ms, ((halo, halo), (halo, halo), (0, 0)), mode="symmetric")
  up = wald.interp23tap(padded, ratio)[ratio * halo:-ratio * halo, ratio * halo:-ratio * halo]
  return np.clip(up, 0.0, 1.0).astype(np.float32)


def _collect(scene, batch_fn, options):
  rows = []
  predict.tiled_predict(scene, batch_fn, options,
                        lambda r, x, valid: rows.append((r, x.copy())), progress=False)
  assert [r for r, _ in rows] == sorted(r for r, _ in rows)
  out = np.concatenate([x for _, x in rows])
  assert out.shape == (scene.height, scene.width, scene.num_bands)
  return out


def _exact_mask(size, tile, overlap, radius):
  """Positions >= radius from the interior edges of every tile weighing on them."""
  ok = np.ones(size, bool)
  starts = predict.tile_starts(size, tile, overlap)
  for i, (s, w) in enumerate(zip(starts, predict.axis_weights(size, tile, overlap))):
    k = np.arange(len(w))
    near = np.zeros(len(w), bool)
    if i > 0:
      near |= k < radius
    if i < len(starts) - 1:
      near |= k >= len(w) - radius
    ok[s + k[(w > 0) & near]] = False
  return ok


@pytest.mark.parametrize("size,tile,overlap", [
    (1000, 256, 64), (1300, 256, 64), (200, 256, 64), (256, 256, 0),
    (1000, 128, 32), (520, 128, 0)])
def test_weights_sum_to_one(size, tile, overlap):
  starts = predict.tile_starts(size, tile, overlap)
  assert starts[0] == 0 and starts[-1] == max(size - tile, 0)
  total = np.zeros(size)
  for s, w in zip(starts, predict.axis_weights(size, tile, overlap)):
    assert w.min() > 0
    total[s:s + len(w)] += w
  np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_tile_lms_matches_whole_scene():
  ms, pan = _scene(200, 264)
  scene = ArrayScene(ms, pan, 4, MAX)
  whole = _upsample_whole(ms / np.float32(MAX), 4)
  for row, col in [(0, 0), (72, 136), (200 - 128, 264 - 128)]:
    x = scene.read_inputs(row, col, 128, 128)
    np.testing.assert_allclose(np.clip(x.lms, 0, 1), whole[row:row + 128, col:col + 128],
                               atol=1e-6)
    np.testing.assert_array_equal(x.pan, pan[row:row + 128, col:col + 128] / np.float32(MAX))
    assert x.valid.all()


def test_local_model_tiled_equals_one_pass():
  """1000x1300 PAN px, tiles 256 / overlap 64 (neither side a multiple)."""
  ms, pan = _scene(1000, 1300)
  scene = ArrayScene(ms, pan, 4, MAX)
  fn = train_tiny.random_predict_fn()
  options = predict.TileOptions(tile=256, overlap=64, batch=4)
  tiled = _collect(scene, fn, options)
  unit = lambda a: a.astype(np.float32) / MAX
  one_pass = np.asarray(fn({"ms": unit(ms)[None], "pan": unit(pan)[None],
                            "lms": _upsample_whole(unit(ms), 4)[None]}))[0]
  mask = np.outer(_exact_mask(1000, 256, 64, 2), _exact_mask(1300, 256, 64, 2))
  assert mask.mean() > 0.95
  np.testing.assert_allclose(tiled[mask], one_pass[mask], atol=1e-5)
  # Near seams the blend is a convex mix of nearby values: still close.
  assert np.abs(tiled - one_pass).max() < 0.2


@pytest.fixture(scope="module")
def tiny_pansharpener():
  config = train_tiny.config()
  config.model.size = "tiny"
  model = registry.build_model(config.model, 4)
  x = {"ms": np.zeros((1, 8, 8, 4), np.float32), "pan": np.zeros((1, 32, 32, 1), np.float32),
       "lms": np.zeros((1, 32, 32, 4), np.float32)}
  # The real heads start at zero (output = lms); random ones do not.
  return model, train_tiny.random_variables(model, x, seed=2, scale=0.1)


def test_pansharpener_output_is_exact_blend_of_tiles(tiny_pansharpener):
  model, variables = tiny_pansharpener
  ms, pan = _scene(328, 456, seed=3)   # tile 128: neither side a multiple
  scene = ArrayScene(ms, pan, 4, MAX)
  batch_fn = inference.Restored(model, variables, step=0).batch_fn()
  calls = []

  def recording(batch):
    out = batch_fn(batch)
    calls.append((batch, np.asarray(out)))
    return out

  options = predict.TileOptions(tile=128, overlap=32, batch=3)
  tiled = _collect(scene, recording, options)
  assert np.isfinite(tiled).all()
  rows = predict.tile_starts(328, 128, 32)
  cols = predict.tile_starts(456, 128, 32)
  tiles = [(r, c) for r in rows for c in cols]
  inputs = {k: np.concatenate([b[k] for b, _ in calls])[:len(tiles)] for k in ("ms", "pan", "lms")}
  outputs = np.concatenate([o for _, o in calls])[:len(tiles)]
  assert len(calls) == -(-len(tiles) // 3)
  unit = lambda a: a.astype(np.float32) / MAX
  lms = _upsample_whole(unit(ms), 4)
  reference = np.zeros_like(tiled)
  wy, wx = predict.axis_weights(328, 128, 32), predict.axis_weights(456, 128, 32)
  single = np.zeros(tiled.shape[:2], int)
  for n, (r, c) in enumerate(tiles):
    np.testing.assert_array_equal(inputs["pan"][n], unit(pan)[r:r + 128, c:c + 128])
    np.testing.assert_array_equal(inputs["ms"][n], unit(ms)[r // 4:r // 4 + 32, c // 4:c // 4 + 32])
    np.testing.assert_allclose(inputs["lms"][n], lms[r:r + 128, c:c + 128], atol=1e-6)
    w = np.outer(wy[rows.index(r)], wx[cols.index(c)])[..., None]
    reference[r:r + 128, c:c + 128] += w * outputs[n]
    single[r:r + 128, c:c + 128] += (w[..., 0] > 0)
  np.testing.assert_allclose(tiled, reference, atol=1e-5)
  # Where one tile alone has weight (away from seams), its own prediction.
  n = tiles.index((rows[1], cols[1]))
  r, c = tiles[n]
  inner = single[r:r + 128, c:c + 128] == 1
  assert inner.sum() > 0
  np.testing.assert_allclose(tiled[r:r + 128, c:c + 128][inner], outputs[n][inner], atol=1e-5)


def test_geotiff_output_keeps_georeference_and_dtype(tmp_path):
  # PAN shifted by 8 m east/north: the common area is a crop of both.
  fixtures.geotiff_pair(str(tmp_path), bands=4, ms_hw=(40, 52), pan_offset=(8.0, 8.0))
  ms_path, pan_path = tmp_path / "MS" / "scene.tif", tmp_path / "PAN" / "scene.tif"
  scene = GeoTiffScene(str(ms_path), str(pan_path), 4, MAX)
  out = str(tmp_path / "out" / "fused.tif")
  look = predict.predict_scene(scene, lambda b: b["lms"], predict.TileOptions(64, 16, 2),
                               out, progress=False)
  scene.close()
  assert os.path.isfile(look)
  expected = fixtures.read_common_area(str(ms_path), str(pan_path), 4)
  with rasterio.open(out) as dst, rasterio.open(pan_path) as pan_src:
    assert dst.crs == pan_src.crs
    assert dst.transform == expected.profile["transform"]
    assert dst.transform != pan_src.transform   # cropped to the common area
    assert dst.dtypes[0] == "uint16" and dst.count == 4
    assert (dst.height, dst.width) == expected.pan.shape[:2]
    fused = np.moveaxis(dst.read(), 0, -1)
  lms = _upsample_whole(checks.to_unit(expected.ms, MAX, "ms"), 4)
  np.testing.assert_array_equal(fused, np.rint(lms * MAX).astype(np.uint16))


def test_cli_predict_end_to_end(tmp_path, monkeypatch):
  """main.py --mode=predict (TinyNet in place of the registry's model, as the
  trainer's CLI tests do) with a checkpoint saved from the builder."""
  from pansharp_jax.train import builder, checkpoint, parallel
  monkeypatch.setattr(registry, "build_model", train_tiny.build)
  config = train_tiny.config()
  workdir = str(tmp_path / "run")
  _, _, _, state = builder.build(config, parallel.make_mesh())
  manager = checkpoint.make_manager(workdir, config)
  checkpoint.save(manager, state, force=True)
  manager.wait_until_finished()
  manager.close()
  fixtures.geotiff_pair(str(tmp_path / "scene"), bands=4, ms_hw=(24, 36))
  out = str(tmp_path / "fused.tif")
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  result = subprocess.run(
      [sys.executable, "tests/train/train_tiny.py", "--config", "configs/default.py",
       *train_tiny.FLAGS, "--config.batch_size=8", f"--workdir={workdir}",
       "--mode=predict", f"--ms={tmp_path}/scene/MS/scene.tif",
       f"--pan={tmp_path}/scene/PAN/scene.tif", f"--out={out}", "--config.predict.tile_size=64",
       "--config.predict.batch_size=2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  with rasterio.open(out) as dst:
    assert (dst.height, dst.width, dst.count, dst.dtypes[0]) == (96, 144, 4, "uint16")
    assert dst.crs is not None
  assert os.path.isfile(str(tmp_path / "fused_quicklook.png"))
  with open(tmp_path / "fused_metrics.json") as f:
    scores = json.load(f)
  assert scores["blocks_scored"] == 3 * 4 and 0 <= scores["model"]["qnr"] <= 1
  # No checkpoint: one line, exit 2, no traceback.
  result = subprocess.run(
      [sys.executable, "tests/train/train_tiny.py", "--config", "configs/default.py",
       *train_tiny.FLAGS, f"--workdir={tmp_path}/empty", "--mode=predict",
       f"--ms={tmp_path}/scene/MS/scene.tif", f"--pan={tmp_path}/scene/PAN/scene.tif",
       f"--out={out}", "--config.predict.tile_size=64"], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 2
  assert "no checkpoint to predict with" in result.stderr
  assert "Traceback" not in result.stderr
