"""compare.py on real runs: the shared 10-step workdir and a second run that
differs in its learning rate (the tiny stand-in model of train_tiny.py)."""

import json
import os
import shutil

import pytest
import train_tiny

from pansharp_jax import baselines, commands, compare

BASELINES = set(baselines.BASELINES)


@pytest.fixture(scope="module")
def runs(workdir, tmp_path_factory):
  """(a, b): copies of the shared run (without a test report) and a run
  with optim.lr=1e-3 scored on the test split too."""
  root = tmp_path_factory.mktemp("runs")
  a, b = str(root / "a"), str(root / "b")
  shutil.copytree(workdir, a)
  shutil.rmtree(os.path.join(a, "eval", "test"), ignore_errors=True)
  config = train_tiny.config(**train_tiny.SHORT_RUN)
  config.optim.lr = 1e-3
  commands.train(config, b)
  config.data.synthetic.num_test = 2
  config.eval_batch_size = 2
  commands.evaluate(config, b, "test")
  return a, b


def _summary(run, *parts):
  with open(os.path.join(run, *parts)) as f:
    return json.load(f)["summary"]


def test_val_table_names_runs_by_their_config_difference(runs):
  a, b = runs
  result = compare.compare([a, b], "val")
  names = ["optim.lr=0.003", "optim.lr=0.001"]
  assert [r["name"] for r in result["runs"]] == names
  assert [r["differs"] for r in result["runs"]] == [{"optim.lr": 3e-3}, {"optim.lr": 1e-3}]
  assert result["missing"] == [] and result["baselines_differ"] == []
  # Each model row once, the classical methods once, as their reports say.
  assert set(result["rows"]) == set(names) | BASELINES
  for name, run in zip(names, runs):
    summary = _summary(run, "eval", "report.json")
    assert result["rows"][name]["psnr"] == {k: summary["model"]["psnr"][k]
                                            for k in ("mean", "std")}
  assert result["rows"]["GSA"]["sam"]["mean"] == _summary(a, "eval", "report.json")["GSA"]["sam"]["mean"]
  # The best mean of each column, by its direction, is marked.
  psnr = {m: r["psnr"]["mean"] for m, r in result["rows"].items()}
  sam = {m: r["sam"]["mean"] for m, r in result["rows"].items()}
  assert result["best"]["psnr"] == [max(psnr, key=psnr.get)]
  assert result["best"]["sam"] == [min(sam, key=sam.get)]
  row = next(line for line in compare.to_markdown(result).splitlines()
             if line.startswith(f"| {result['best']['psnr'][0]} |"))
  assert row.split(" | ")[1].startswith("**") and row.split(" | ")[1].endswith("**")


def test_a_run_without_a_report_for_the_split_is_listed_missing(runs, tmp_path, capsys):
  a, b = runs
  assert compare.main([a, b, "--split=test", "--out", str(tmp_path)]) == 0
  with open(tmp_path / "compare_test.json") as f:
    result = json.load(f)
  assert [r["name"] for r in result["runs"]] == ["optim.lr=0.001"]
  assert result["missing"] == [{"name": "optim.lr=0.003", "dir": a, "expected": [
      os.path.join(a, "eval", "test", "report.json")]}]
  markdown = (tmp_path / "compare_test.md").read_text()
  assert markdown == capsys.readouterr().out.split("wrote ")[0]
  assert "| optim.lr=0.003 | missing | missing |" in markdown
  assert result["baselines_from"] == "optim.lr=0.001"


def test_baselines_scored_on_other_images_are_flagged(runs, tmp_path):
  _, b = runs
  other = str(tmp_path / "b2")
  shutil.copytree(b, other)
  path = os.path.join(other, "eval", "report.json")
  with open(path) as f:
    report = json.load(f)
  report["summary"]["BT-H"]["psnr"]["mean"] += 1.0
  with open(path, "w") as f:
    json.dump(report, f)
  result = compare.compare([b, other])
  # Identical configs: the directories tell the runs apart.
  assert [r["name"] for r in result["runs"]] == ["b", "b2"]
  assert result["baselines_differ"] == ["b2"]
  assert "**Not comparable:** the classical methods score differently in b2" in (
      compare.to_markdown(result))


def test_bad_run_directories_are_one_line_errors(runs, tmp_path, capsys):
  a, _ = runs
  assert compare.main([a, str(tmp_path / "nope")]) == 2
  assert capsys.readouterr().err == (
      f"error: {tmp_path / 'nope' / 'config.json'}: not found (not a run directory?)\n")
  assert compare.main([a, a]) == 2
  assert "a directory is given twice" in capsys.readouterr().err
  assert compare.main([a, "--split=train"]) == 2
  assert capsys.readouterr().err == "error: split: 'train' is not one of val, test\n"
  assert compare.main([]) == 2 and "usage" in capsys.readouterr().err


def test_names_from_nested_differences_and_missing_fields():
  names, diffs = compare.run_names(
      [{"model": {"name": "pnn", "size": "tiny"}, "seed": 0},
       {"model": {"name": "dicnn", "size": "tiny"}, "seed": 0, "extra": [1, 2]}],
      ["r/x", "r/y"])
  assert names == ["model.name=pnn, extra=null", "model.name=dicnn, extra=[1, 2]"]
  assert diffs[0] == {"model.name": "pnn", "extra": None}
