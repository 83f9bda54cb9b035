"""Real scenes in predict: nodata borders, the output file, MS and PAN on
different grids, and the fused scene's full-resolution metrics.

"The same scene without a border" is the bordered scene's valid area cut out
as a scene of its own: a border filled by mirroring the valid pixels (what the
model sees) is then exactly what that scene's edges look like to the reader.
"""

import json
import logging
import os
import sys

import numpy as np
import pytest
import rasterio
from rasterio import warp
from rasterio.enums import Compression
from scipy import ndimage
import tifffile

from pansharp_jax import metrics, predict, scene_metrics
from pansharp_jax.data import geotiff, wald
from pansharp_jax.data.scene import ArrayScene, FusedImage, GeoTiffScene, SceneWriter
from tests.data import fixtures

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "train"))
import train_tiny  # noqa: E402

MAX = 2047
TAG = 65535            # a nodata tag outside the data range
# MS pixels of nodata (top, bottom, left, right): x 4 = whole 32 px blocks.
BORDER = (8, 8, 16, 8)
PROFILE = {"crs": "EPSG:32633", "transform": rasterio.Affine(0.5, 0, 5e5, 0, -0.5, 4e6)}


def _pointwise(batch):
  """A stand-in model of receptive field 0 (per pixel, from lms and pan)."""
  return np.clip(batch["lms"] * (0.5 + batch["pan"]), 0.0, 1.0)


def _content(ms_hw, seed=0):
  """Image-like MS (h, w, 4) and PAN (4h, 4w, 1), no zero pixel."""
  ms = fixtures.smooth_image([seed, 0], (*ms_hw, 4), MAX, sigma=3)
  pan = fixtures.smooth_image([seed, 1], (4 * ms_hw[0], 4 * ms_hw[1], 1), MAX, sigma=6)
  return ms, pan


def _framed(image, border, value, scale=1):
  """`image` inside a frame of `border` (scaled) pixels holding `value`."""
  t, b, l, r = (scale * n for n in border)
  return np.pad(image, ((t, b), (l, r), (0, 0)), constant_values=value)


def _run(scene, model, options):
  """tiled_predict's rows: (fused in [0, 1], valid)."""
  rows = []
  predict.tiled_predict(scene, model, options,
                        lambda r, x, v: rows.append((x.copy(), v.copy())), progress=False)
  return np.concatenate([x for x, _ in rows]), np.concatenate([v for _, v in rows])


def _near_border(valid, pixels):
  """Valid pixels within `pixels` of an invalid one."""
  return valid & ~ndimage.binary_erosion(valid, iterations=pixels, border_value=1)


@pytest.fixture(params=["tagged", "zeros"])
def bordered(request, tmp_path):
  """A GeoTIFF pair with a nodata border (as a tag, or untagged zeros) and a
  nodata patch in the PAN only; its valid area as an ArrayScene; the mask of
  valid pixels expected; the nodata value."""
  value = TAG if request.param == "tagged" else 0
  ms, pan = _content((56, 64))
  pan[100:108, 140:156] = value                  # in PAN px of the content
  tag = value if request.param == "tagged" else None
  fixtures.geotiff(str(tmp_path / "ms.tif"), _framed(ms, BORDER, value), nodata=tag)
  fixtures.geotiff(str(tmp_path / "pan.tif"), _framed(pan, BORDER, value, 4), pixel=0.5,
                   nodata=tag)
  options = {"nodata_value": TAG} if tag is not None else {"zero_is_nodata": True}
  crop = ArrayScene(ms, pan, 4, MAX, **options)
  valid = _framed(pan != value, BORDER, False, 4)[..., 0]
  scene = GeoTiffScene(str(tmp_path / "ms.tif"), str(tmp_path / "pan.tif"), 4, MAX,
                       zero_is_nodata=tag is None)
  yield scene, crop, valid, value
  scene.close()


def test_nodata_border_is_kept_and_neutral(bordered, tmp_path):
  scene, crop, expected_valid, value = bordered
  options = predict.TileOptions(128, 32, 3)
  fused, valid = _run(scene, _pointwise, options)
  np.testing.assert_array_equal(valid, expected_valid)
  # Valid pixels next to the border equal the borderless scene's (here every
  # valid pixel does: the model is per pixel, and lms reaches 33 px).
  alone, _ = _run(crop, _pointwise, options)
  t, l = 4 * BORDER[0], 4 * BORDER[2]
  inside = fused[t:t + crop.height, l:l + crop.width]
  ring = _near_border(valid, 8)[t:t + crop.height, l:l + crop.width]
  assert ring.sum() > 2000
  np.testing.assert_allclose(inside[ring], alone[ring], atol=1e-5)
  inner_valid = valid[t:t + crop.height, l:l + crop.width]
  np.testing.assert_allclose(inside[inner_valid], alone[inner_valid], atol=1e-5)
  # The file: nodata exactly where an input is invalid, and tagged.
  out = str(tmp_path / "out" / "fused.tif")
  predict.predict_scene(scene, _pointwise, options, out, progress=False)
  with rasterio.open(out) as dst:
    assert dst.nodata == value
    written = np.moveaxis(dst.read(), 0, -1)
  np.testing.assert_array_equal((written == value).all(-1), ~expected_valid)
  assert not (written[expected_valid] == value).any()
  # Metrics skip the border: those of the borderless scene (blocks aligned).
  alone_out = str(tmp_path / "alone" / "fused.tif")
  predict.predict_scene(crop, _pointwise, options, alone_out, progress=False)
  with_border = json.load(open(scene_metrics.write_metrics(
      scene, out, sensor="QB", progress=False)))
  without = json.load(open(scene_metrics.write_metrics(
      crop, alone_out, sensor="QB", progress=False)))
  assert with_border["blocks_scored"] == without["blocks_scored"] == 7 * 8 - 1
  for name, index in without["model"].items():
    assert with_border["model"][name] == pytest.approx(index, abs=1e-6)


def test_tiles_without_valid_pixels_are_skipped():
  """A scene whose top 160 rows and left 80 columns are nodata: only the 8
  tiles (of 25) that hold a valid pixel reach the model; rows no tile
  reached are still written, once each, as invalid."""
  ms, pan = _content((64, 64))
  ms[:40], pan[:160], ms[:, :20] = 0, 0, 0
  scene = ArrayScene(ms, pan, 4, MAX, zero_is_nodata=True)
  calls, rows = [], []

  def model(batch):
    calls.append(batch)
    return _pointwise(batch)

  predict.tiled_predict(scene, model, predict.TileOptions(64, 16, 2),
                        lambda r, x, v: rows.append((r, x.copy(), v.copy())), progress=False)
  assert len(calls) == 4
  starts = [r for r, _, _ in rows]
  assert starts[0] == 0 and all(r + len(x) == nxt for (r, x, _), nxt in
                                zip(rows, starts[1:] + [scene.height]))
  fused, valid = np.concatenate([x for _, x, _ in rows]), np.concatenate([v for *_, v in rows])
  whole = scene.read_inputs(0, 0, scene.height, scene.width)
  expected = _pointwise({"lms": np.clip(whole.lms, 0, 1), "pan": whole.pan})
  np.testing.assert_array_equal(valid, whole.valid)
  assert valid[160:, 80:].all() and not valid[:160].any() and not valid[:, :80].any()
  np.testing.assert_allclose(fused[valid], expected[valid], atol=1e-6)
  assert not fused[~valid].any()


def test_border_looks_like_a_scene_edge_to_a_local_model():
  """TinyNet (3x3 convs) in one tile: valid pixels within 8 px of the
  border equal the borderless scene's, except the 2 px (its radius) along
  the top and left, where the borderless tile starts and its convs pad with
  zeros while the bordered tile sees the mirrored fill."""
  ms, pan = _content((40, 44), seed=1)
  border = (5, 3, 7, 4)
  scene = ArrayScene(_framed(ms, border, 0), _framed(pan, border, 0, 4), 4, MAX,
                     zero_is_nodata=True)
  crop = ArrayScene(ms, pan, 4, MAX)
  fn = train_tiny.random_predict_fn()
  options = predict.TileOptions(256, 0, 1)
  fused, valid = _run(scene, fn, options)
  alone, _ = _run(crop, fn, options)
  t, l = 4 * border[0], 4 * border[2]
  inside = fused[t:t + crop.height, l:l + crop.width]
  ring = _near_border(valid, 8)[t:t + crop.height, l:l + crop.width]
  ring[:2], ring[:, :2] = False, False
  np.testing.assert_allclose(inside[ring], alone[ring], atol=1e-5)


def test_output_is_tiled_compressed_with_overviews(tmp_path):
  """Read back with rasterio, for each compression; the sizes go to the note."""
  ms, pan = _content((136, 152))
  scene = ArrayScene(ms, pan, 4, MAX, PROFILE)
  fused = np.repeat(np.repeat(ms, 4, 0), 4, 1).astype(np.float32) / MAX
  sizes = {}
  for compress in ("deflate", "lzw", "none"):
    path = str(tmp_path / f"{compress}.tif")
    writer = SceneWriter(path, scene, compress)
    for row in range(0, scene.height, 100):
      writer.write(row, fused[row:row + 100])
    writer.close()
    assert not os.path.exists(str(tmp_path / f"{compress}.partial.tif"))
    with rasterio.open(path) as dst:
      assert dst.block_shapes == [(512, 512)] * 4
      assert dst.compression == (None if compress == "none" else Compression[compress])
      assert all(dst.overviews(b) == [2] for b in range(1, 5))
      assert dst.descriptions == tuple(f"fused band {b}" for b in range(1, 5))
      assert dst.crs == "EPSG:32633"
      np.testing.assert_array_equal(np.moveaxis(dst.read(), 0, -1),
                                    np.repeat(np.repeat(ms, 4, 0), 4, 1))
    sizes[compress] = os.path.getsize(path)
  assert sizes["deflate"] < sizes["none"] and sizes["lzw"] < sizes["none"]


def test_without_rasterio(tmp_path, monkeypatch):
  """The tifffile fallback: an uncompressed TIFF with the GDAL nodata tag,
  scored by reading it back through a memory map."""
  monkeypatch.setattr(geotiff, "rasterio", None)
  ms, pan = _content((24, 32))
  scene = ArrayScene(_framed(ms, BORDER, 0), _framed(pan, BORDER, 0, 4), 4, MAX,
                     zero_is_nodata=True)
  out = str(tmp_path / "fused.tif")
  predict.predict_scene(scene, _pointwise, predict.TileOptions(64, 16, 2), out,
                        progress=False)
  with tifffile.TiffFile(out) as tif:
    assert tif.pages[0].tags["GDAL_NODATA"].value == "0"
    written = tif.asarray()
  np.testing.assert_array_equal((written == 0).all(-1), ~_framed(pan > 0, BORDER, False, 4)[..., 0])
  result = json.load(open(scene_metrics.write_metrics(scene, out, sensor="QB", progress=False)))
  assert result["blocks_scored"] == 3 * 4 and 0 <= result["model"]["qnr"] <= 1


def test_ms_in_another_crs_is_resampled(tmp_path, caplog):
  """The MS reprojected into the next UTM zone (bilinear), then back onto the
  PAN grid by predict: two bilinear resamplings of a smooth image, each off
  by at most (f_xx + f_yy) / 8 (pixel units, f's second differences), plus
  half a DN of rounding. A placement off by half an MS pixel would cost far
  more, as checked below; lms (interp23tap, unit gain on smooth errors) and
  the stand-in model (gain <= 1.5 in lms) carry the error to the output."""
  ms, pan = _content((48, 48))
  fixtures.geotiff(str(tmp_path / "ms.tif"), ms)
  fixtures.geotiff(str(tmp_path / "pan.tif"), pan, pixel=0.5)
  with rasterio.open(tmp_path / "ms.tif") as src:
    grid, w, h = warp.calculate_default_transform(src.crs, "EPSG:32634", src.width,
                                                  src.height, *src.bounds)
    moved = np.zeros((4, h, w), np.uint16)
    warp.reproject(src.read(), moved, src_transform=src.transform, src_crs=src.crs,
                   dst_transform=grid, dst_crs="EPSG:32634", dst_nodata=0,
                   resampling=warp.Resampling.bilinear)
  fixtures.geotiff(str(tmp_path / "ms34.tif"), np.moveaxis(moved, 0, -1),
                   origin=(grid.c, grid.f), pixel=grid.a, crs="EPSG:32634", nodata=0)
  aligned = GeoTiffScene(str(tmp_path / "ms.tif"), str(tmp_path / "pan.tif"), 4, MAX)
  with caplog.at_level(logging.INFO):
    other = GeoTiffScene(str(tmp_path / "ms34.tif"), str(tmp_path / "pan.tif"), 4, MAX)
  assert "MS resampled (bilinear) onto the PAN grid" in caplog.text
  assert other.profile == aligned.profile and other.height == aligned.height == 192
  (ms_a, _), (ms_o, ms_valid) = aligned.read_ms(0, 0, 48, 48), other.read_ms(0, 0, 48, 48)
  f = ms_a.astype(np.float64)
  bound = 2 * (np.abs(np.diff(f, 2, 0)).max() + np.abs(np.diff(f, 2, 1)).max()) / 8 + 0.5 / MAX
  inner = ndimage.binary_erosion(ms_valid, iterations=2)
  err_ms = np.abs(ms_o - ms_a)[inner].max()
  half_pixel_off = np.abs(ndimage.shift(f, (0.5, 0.5, 0), order=1) - f)[inner].max()
  assert err_ms <= bound and err_ms < half_pixel_off / 4
  fused_a, _ = _run(aligned, _pointwise, predict.TileOptions(64, 16, 4))
  fused_o, valid = _run(other, _pointwise, predict.TileOptions(64, 16, 4))
  # Away from the edges, by the lms reach (10 MS px).
  inner = ndimage.binary_erosion(valid, iterations=40)
  lms_a, lms_o = (s.read_inputs(0, 0, 192, 192).lms for s in (aligned, other))
  err_lms = np.abs(lms_o - lms_a)[inner].max()
  assert err_lms <= 1.1 * err_ms
  assert np.abs(fused_o - fused_a)[inner].max() <= 1.5 * err_lms
  aligned.close()
  other.close()


def test_scene_metrics_hand_checks(tmp_path, monkeypatch):
  """The model returns the upsampled MS (EXP): D_lambda ~ 0 (only the output's
  rounding to DN), as for the EXP baseline (0 to float precision); every
  index in [0, 1]; tiles of 128 px give the single-tile values; D_lambda is
  metrics.d_lambda of the whole scene."""
  ms, pan = _content((64, 80), seed=2)
  scene = ArrayScene(ms, pan, 4, MAX, PROFILE)
  out = str(tmp_path / "fused.tif")
  predict.predict_scene(scene, lambda b: b["lms"], predict.TileOptions(128, 32, 2), out,
                        progress=False)
  result = json.load(open(scene_metrics.write_metrics(scene, out, sensor="QB",
                                                      baselines=True, progress=False)))
  assert result["blocks_scored"] == result["blocks_in_scene"] == 8 * 10
  assert result["model"]["d_lambda"] < 2e-3
  assert result["baselines"]["EXP"]["d_lambda"] < 1e-9
  for indices in [result["model"], *result["baselines"].values()]:
    assert all(0 <= v <= 1 for v in indices.values()), indices
  monkeypatch.setattr(scene_metrics, "TILE", 128)
  tiled = json.load(open(scene_metrics.write_metrics(scene, out, sensor="QB",
                                                     progress=False)))
  for name, value in result["model"].items():
    assert tiled["model"][name] == pytest.approx(value, abs=1e-12)
  with rasterio.open(out) as dst:
    fused = np.moveaxis(dst.read(), 0, -1).astype(np.float64)
  ms_up = scene.read_inputs(0, 0, scene.height, scene.width).lms.astype(np.float64) * MAX
  assert result["model"]["d_lambda"] == pytest.approx(metrics.d_lambda(fused, ms_up),
                                                      abs=1e-6)


def test_scene_metrics_differ_from_the_toolbox_only_near_the_scene_edges(tmp_path,
                                                                          monkeypatch):
  """Block by block, the scene's indices are those of the toolbox on the whole
  arrays (interp23tap wrapping, the MTF filter replicating, as
  metrics.evaluate_full) except within edge_reach (41 px at ratio 4) of the
  scene's edges, which are mirrored; the report counts those blocks."""
  ms, pan = _content((64, 80), seed=3)                     # 256 x 320 PAN px
  scene = ArrayScene(ms, pan, 4, MAX, PROFILE)
  out = str(tmp_path / "fused.tif")
  predict.predict_scene(scene, _pointwise, predict.TileOptions(128, 32, 2), out,
                        progress=False)
  added = []
  add = scene_metrics.BlockSums.add
  monkeypatch.setattr(scene_metrics.BlockSums, "add",
                      lambda self, terms, *a: added.append(terms) or add(self, terms, *a))
  fused = FusedImage(out)
  result = scene_metrics.score_scene(scene, fused, sensor="QB", progress=False)
  x = fused.read(0, 0, 256, 320).astype(np.float64)
  fused.close()
  ms_up = wald.interp23tap(ms.astype(np.float64), 4)
  x_lp = wald.mtf_filter(x, wald.mtf_kernels("QB", 4, 4))
  pan = pan[..., 0].astype(np.float64)
  toolbox = scene_metrics.block_terms(x, x_lp, ms_up, pan, metrics.pan_lowpass(pan, 4))
  (ours,) = added                                           # one tile
  gap = np.max([np.abs(ours[k] - t).reshape(-1, 8, 10).max(0) for k, t in toolbox.items()],
               axis=0)
  near = np.ones((8, 10), bool)
  near[2:-2, 2:-2] = False                                  # 41 px: two blocks deep
  assert gap[~near].max() < 1e-5                            # float32 inputs, uint16 Q2n
  assert gap[near].max() > 1e-2
  assert result["blocks_near_edge"] == near.sum() == 56
  assert "scene edges mirrored" in result["protocol"]
