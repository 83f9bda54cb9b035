"""scene_metrics: every method is scored on the same blocks, even when one
method's index is not finite on some of them, and the report counts the
blocks of each method."""

import numpy as np

from pansharp_jax import baselines, predict, scene_metrics
from pansharp_jax.data.scene import ArrayScene, FusedImage
from tests.test_predict_scenes import MAX, PROFILE, _content, _pointwise


def _score(scene, out, **kwargs):
  fused = FusedImage(out)
  try:
    return scene_metrics.score_scene(scene, fused, sensor="QB", progress=False, **kwargs)
  finally:
    fused.close()


def test_every_method_is_scored_on_the_blocks_where_all_are_finite(tmp_path, monkeypatch):
  ms, pan = _content((32, 40), seed=5)                      # 128 x 160 PAN px: 4 x 5 blocks
  scene = ArrayScene(ms, pan, 4, MAX, PROFILE)
  out = str(tmp_path / "fused.tif")
  predict.predict_scene(scene, _pointwise, predict.TileOptions(128, 32, 2), out,
                        progress=False)
  alone = _score(scene, out)
  assert alone["blocks_scored_by_method"] == {"model": 20}
  monkeypatch.setattr(baselines, "BASELINES", {"EXP": baselines.exp})
  exp_alone = _score(scene, out, baselines=True)["baselines"]["EXP"]

  # A third method whose index is NaN on block (1, 2) (a degenerate tile):
  # block_terms runs per method in order model, EXP, NAN on the one tile.
  monkeypatch.setattr(baselines, "BASELINES", {"EXP": baselines.exp, "NAN": baselines.exp})
  terms, calls = scene_metrics.block_terms, []

  def nan_for_the_third(*args):
    result = terms(*args)
    calls.append(1)
    if len(calls) == 3:
      result["q_fused"] = result["q_fused"].copy()
      result["q_fused"][..., 1, 2] = np.nan
    return result

  monkeypatch.setattr(scene_metrics, "block_terms", nan_for_the_third)
  both = _score(scene, out, baselines=True)
  assert both["blocks_scored"] == 19
  assert both["blocks_scored_by_method"] == {"model": 19, "EXP": 19, "NAN": 19}
  # The model and EXP lose the block NAN cannot score, so their indices change.
  assert both["model"]["qnr"] != alone["model"]["qnr"]
  assert both["baselines"]["EXP"]["qnr"] != exp_alone["qnr"]
  assert both["baselines"]["EXP"] == both["baselines"]["NAN"]
