"""main.py end to end on the tiny config, and its one-line errors."""

import json
import os
import subprocess
import sys

from PIL import Image
import pytest

from pansharp_jax import curves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.num_train_steps=8", "--config.batch_size=2",
        "--config.data.image_size=32", "--config.data.synthetic.scene_size=32",
        "--config.data.synthetic.num_train=4", "--config.data.synthetic.num_val=2",
        "--config.log_every=4", "--config.eval_every=4",
        "--config.checkpoint_every=4", "--config.optim.warmup_steps=2"]


def run_main(*args, timeout=600):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "main.py", "--config", "configs/default.py", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_train_end_to_end_writes_everything(tmp_path):
  workdir = str(tmp_path / "run")
  result = run_main("--workdir", workdir, *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "eval", "report.json")) as f:
    report = json.load(f)
  for method in ("model", "EXP"):
    assert set(report["mean"][method]) >= {"psnr", "ssim"}
    assert len(report["per_image"][method]) == 2
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  train = [r for r in records if r["split"] == "train"]
  assert [r["step"] for r in train] == [4, 8]
  assert {"loss", "loss_l1", "psnr", "lr", "step_time"} <= set(train[0])
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "8"))
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["num_train_steps"] == 8

  # Evaluate mode reloads the checkpoint and reproduces the final report.
  result = run_main("--workdir", workdir, "--mode=evaluate", *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "eval", "val", "report.json")) as f:
    again = json.load(f)
  assert again["mean"]["model"]["psnr"] == pytest.approx(report["mean"]["model"]["psnr"], abs=1e-4)
  # Both reports have every baseline; both write quicklook panels.
  for r in (report, again):
    assert {"EXP", "GS", "MTF-GLP-FS"} <= set(r["mean"]) and "q2n" in r["mean"]["GS"]
  for folder in ("eval", os.path.join("eval", "val")):
    looks = os.listdir(os.path.join(workdir, folder, "quicklooks"))
    assert sorted(looks) == ["0000.png", "0001.png"]
    # The curves PNG comes with each report.
    with Image.open(os.path.join(workdir, folder, "curves.png")) as image:
      assert image.size == curves.render({}, {}).size


@pytest.mark.parametrize("override, message", [
    ("--config.data.image_size=66", "config.data.image_size: must be a positive multiple of 4"),
    ("--config.no_such_field=1", "config override: no such field"),
    ("--config.data.image_size=abc", "--config.data.image_size=abc"),
    ("--config.model.dtype=float16", "config.model.dtype: must be one of"),
    ("--config.model.size=huge", "config.model.size: must be one of"),
    ("--config.predict.compress=zip",
     "config.predict.compress: must be one of deflate, lzw, none, got 'zip'"),
    ("--config.predict.nodata=inf", "config.predict.nodata: must be a number, nan or None"),
])
def test_bad_overrides_give_one_line_error(tmp_path, override, message):
  result = run_main("--workdir", str(tmp_path), override, timeout=120)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


@pytest.mark.parametrize("mode", ["train", "evaluate"])
def test_workdir_that_is_a_file_is_one_line(tmp_path, mode):
  path = tmp_path / "run"
  path.write_text("not a directory")
  result = run_main("--workdir", str(path), f"--mode={mode}", timeout=120)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert lines == [f"error: --workdir {path}: exists and is not a directory"], (
      result.stderr[-3000:])


def test_evaluate_without_checkpoint_is_a_clear_error(tmp_path):
  result = run_main("--workdir", str(tmp_path / "empty"), "--mode=evaluate", *TINY, timeout=300)
  assert result.returncode == 2
  assert "no checkpoint to evaluate" in result.stderr.strip().splitlines()[-1]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
