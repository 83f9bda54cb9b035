"""compare.py on hand-written runs: reports scored under different settings
are marked, named above the table and refused by --strict; malformed runs
are one line naming the file and field."""

import json
import os

import pytest

from pansharp_jax import compare


def _stats(mean, n=2):
  return {"mean": mean, "std": 0.1, "n": n}


def _run(root, name, *, lr=1e-3, steps=10, split_file="eval/val/report.json", **settings):
  """A run directory with a config and one report; `settings` override the
  report's split, weights, step, protocol and source."""
  run = root / name
  os.makedirs(run / os.path.dirname(split_file), exist_ok=True)
  (run / "config.json").write_text(json.dumps({"optim": {"lr": lr},
                                               "num_train_steps": steps}))
  report = {"split": "val", "weights": "latest", "step": steps,
            "protocol": "reduced resolution", "source": "synthetic",
            "summary": {"model": {"psnr": _stats(30.0 + lr * 1000)},
                        "EXP": {"psnr": _stats(25.0)}}}
  report.update(settings)
  (run / split_file).write_text(json.dumps(report))
  return str(run)


def test_best_weights_beside_latest_are_marked_and_named_above_the_table(tmp_path):
  a = _run(tmp_path, "a", lr=1e-3)
  b = _run(tmp_path, "b", lr=5e-3, weights="best")
  c = _run(tmp_path, "c", lr=3e-3)
  result = compare.compare([a, b, c])
  assert result["mixed"] == {"weights": {"latest": ["optim.lr=0.001", "optim.lr=0.003"],
                                         "best": ["optim.lr=0.005"]}}
  assert [r["marked"] for r in result["runs"]] == [False, True, False]
  markdown = compare.to_markdown(result)
  lines = markdown.splitlines()
  table = lines.index(next(l for l in lines if l.startswith("| Run / method")))
  above = "\n".join(lines[:table])
  assert ("**Mixed settings** (rows marked † differ from the others): weights: latest "
          "(optim.lr=0.001, optim.lr=0.003), best (optim.lr=0.005).") in above
  assert "scored on the images that chose them" in above
  # Still the best mean (bold), but marked.
  assert any(l.startswith("| optim.lr=0.005 † | **") for l in lines)


@pytest.mark.parametrize("setting, value", [
    ("protocol", "full resolution"), ("source", "geotiff"), ("step", 7),
    ("split", "test")])
def test_every_setting_is_read(tmp_path, setting, value):
  a = _run(tmp_path, "a", lr=1e-3)
  b = _run(tmp_path, "b", lr=2e-3, **{setting: value})
  assert list(compare.compare([a, b])["mixed"]) == [setting]


def test_steps_of_runs_that_differ_in_length_are_not_mixed(tmp_path):
  a = _run(tmp_path, "a", steps=10)
  b = _run(tmp_path, "b", steps=20)
  assert compare.compare([a, b])["mixed"] == {}


def test_strict_refuses_a_mixed_table_in_one_line(tmp_path, capsys):
  a = _run(tmp_path, "a", lr=1e-3)
  b = _run(tmp_path, "b", lr=2e-3, weights="best")
  assert compare.main([a, b]) == 0
  capsys.readouterr()
  assert compare.main([a, b, "--strict"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert captured.err == ("error: --strict: the runs were scored under different "
                          "settings: weights: latest (optim.lr=0.001), best "
                          "(optim.lr=0.002)\n")
  c = _run(tmp_path, "c", lr=3e-3)
  assert compare.main([a, c, "--strict"]) == 0


def _edit(path, change):
  with open(path) as f:
    data = json.load(f)
  with open(path, "w") as f:
    json.dump(change(data), f)


def _drop_n(report):
  del report["summary"]["EXP"]["psnr"]["n"]
  return report


def _empty_model(report):
  report["summary"]["model"] = {}
  return report


@pytest.mark.parametrize("file, change, message", [
    ("eval/val/report.json", _empty_model, "summary.model: no metrics in it"),
    ("eval/val/report.json", lambda r: [r], "a JSON list, not an evaluation report (an object)"),
    ("config.json", lambda c: [c], "a JSON list, not a run's config (an object)"),
    ("eval/val/report.json", _drop_n, "summary.EXP.psnr.n: missing"),
    ("eval/val/report.json", lambda r: {**r, "summary": {"EXP": {}}},
     "summary: no 'model' in it (not an evaluation report)"),
])
def test_a_malformed_run_is_one_line_naming_file_and_field(tmp_path, capsys, file, change,
                                                           message):
  a = _run(tmp_path, "a", lr=1e-3)
  b = _run(tmp_path, "b", lr=2e-3)
  _edit(os.path.join(b, file), change)
  assert compare.main([a, b]) == 2
  err = capsys.readouterr().err
  assert err == f"error: {os.path.join(b, file)}: {message}\n"


def test_two_runs_that_differ_are_both_marked_whichever_comes_first(tmp_path):
  """No majority: the run listed first is not taken as the reference (its
  best weights, scored on the images that chose them, would go unmarked)."""
  best = _run(tmp_path, "a", lr=5e-3, weights="best")
  latest = _run(tmp_path, "b", lr=1e-3)
  for order in ([best, latest], [latest, best]):
    result = compare.compare(order)
    assert [r["marked"] for r in result["runs"]] == [True, True]
    assert set(result["rows"]) >= {"optim.lr=0.005 †", "optim.lr=0.001 †"}


def test_best_weights_on_val_are_noted_even_when_every_run_has_them(tmp_path):
  a = _run(tmp_path, "a", lr=1e-3, weights="best")
  b = _run(tmp_path, "b", lr=2e-3, weights="best")
  result = compare.compare([a, b])
  assert result["mixed"] == {}
  markdown = compare.to_markdown(result)
  assert "Best weights on the val split are scored on the images that chose them." in markdown
  assert "Mixed settings" not in markdown
  c, d = _run(tmp_path, "c", lr=1e-3), _run(tmp_path, "d", lr=2e-3)
  assert "scored on the images" not in compare.to_markdown(compare.compare([c, d]))
