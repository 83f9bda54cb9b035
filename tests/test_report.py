"""Evaluation reports: summaries and the JSON / Markdown files."""

import json
import os

import numpy as np
import pytest

from pansharp_jax import report


def _rows():
  model = [{"name": f"img{i}", "psnr": p, "sam": s}
           for i, (p, s) in enumerate([(30.0, 2.0), (32.0, 3.0), (34.0, 1.0)])]
  exp = [{"psnr": 25.0, "sam": 4.0}, {"psnr": 27.0, "sam": 5.0},
         {"psnr": float("inf"), "sam": 6.0}]
  return {"model": model, "EXP": exp}


def test_summarize():
  summary = report.summarize(_rows()["model"])
  assert set(summary) == {"psnr", "sam"}  # "name" is not a metric
  assert summary["psnr"] == {"mean": 32.0, "std": pytest.approx(2.0),
                             "min": 30.0, "max": 34.0, "n": 3}
  assert summary["sam"]["std"] == pytest.approx(np.std([2, 3, 1], ddof=1))
  assert report.summarize([{"psnr": 30.0}])["psnr"]["std"] is None


def test_write_report(tmp_path):
  out = report.write_report(_rows(), str(tmp_path), extra={"step": 7})
  with open(os.path.join(tmp_path, "report.json")) as f:
    on_disk = json.load(f)  # strict JSON: the inf PSNR became null
  assert on_disk == out
  assert on_disk["step"] == 7
  assert on_disk["summary"]["EXP"]["psnr"]["mean"] is None
  assert on_disk["mean"] == {"model": {"psnr": 32.0, "sam": 2.0},
                             "EXP": {"psnr": None, "sam": 5.0}}
  assert list(on_disk)[:3] == ["mean", "summary", "per_image"]
  assert on_disk["per_image"]["model"][1]["psnr"] == 32.0

  with open(os.path.join(tmp_path, "report.md")) as f:
    md = f.read()
  assert "| Method | PSNR ↑ | SAM ↓ |" in md
  assert "| model | 32.00 ± 2.00 | **2.000 ± 1.000** |" in md
  assert "| EXP | 25.00 – inf | 4.000 – 6.000 |" in md
  assert "| img1 | 32.00 | 3.000 |" in md  # per-image rows by name
  assert "- step: 7" in md
