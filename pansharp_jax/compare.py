"""One table across run directories (ablations): their reports side by side.

  python -m pansharp_jax.compare runs/a runs/b runs/c [--split=val|test] [--out DIR]

Each run is named by what its `config.json` differs in from the other runs'
(`optim.lr=0.001, model.name=pnn`); the table has its model row, mean ± std
per metric, then the classical methods once (they score the same images in
every run; where a run's baselines differ, the table says so), the best
mean of each column in bold. A run without a report for the split is
listed as missing, not left out. Prints the Markdown; with `--out`, writes
`DIR/compare_<split>.{md,json}` too.

A command of its own rather than a `--mode` of main.py: it reads finished
runs' JSON files only (no config, model or jax), and main.py's flags are
those of one run (`--config`, `--workdir`).

Reports read, the first that exists: split val: `eval/val/report.json`
(`--mode=evaluate --split=val`), then `eval/report.json` (end of training);
split test: `eval/test/report.json`.
"""

import json
import os
import sys

import numpy as np

from pansharp_jax import report as report_lib
from pansharp_jax.errors import DataError

MODEL = "model"  # the model's method name in a report (evaluate.MODEL)
REPORTS = {"val": ("eval/val/report.json", "eval/report.json"),
           "test": ("eval/test/report.json",)}


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise DataError(f"{path}: not found (not a run directory?)") from None
  except (OSError, json.JSONDecodeError) as e:
    raise DataError(f"{path}: unreadable JSON ({e})") from None


def flatten(tree: dict, prefix: str = "") -> dict:
  """{'a.b.c': leaf} of a nested dict."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def run_names(configs: list[dict], dirs: list[str]) -> tuple[list[str], list[dict]]:
  """Each run's name from the config fields that differ between the runs,
  and those fields ({key: value}, a missing field as None). Runs whose
  configs do not tell them apart get their directory's name added."""
  flats = [flatten(c) for c in configs]
  keys = list(dict.fromkeys(k for f in flats for k in f))
  differing = [k for k in keys
               if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
  diffs = [{k: f.get(k) for k in differing} for f in flats]
  names = [", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                     for k, v in d.items()) for d in diffs]
  for i, name in enumerate(names):
    if not name or names.count(name) > 1:
      base = os.path.basename(os.path.normpath(dirs[i]))
      names[i] = f"{name} [{base}]" if name else base
  return names, diffs


def find_report(run_dir: str, split: str) -> str | None:
  """Path of the run's report for `split`, or None."""
  for relative in REPORTS[split]:
    path = os.path.join(run_dir, relative)
    if os.path.isfile(path):
      return path
  return None


def _baselines(report: dict) -> dict:
  return {m: s for m, s in report["summary"].items() if m != MODEL}


def _same_scores(a: dict, b: dict) -> bool:
  """Whether two runs' baselines have the same means (so the same images)."""
  def means(baselines):
    return {(m, k): s["mean"] for m, per in baselines.items() for k, s in per.items()}
  a, b = means(a), means(b)
  return a.keys() == b.keys() and all(
      a[k] == b[k] or (a[k] is not None and b[k] is not None
                       and np.isclose(a[k], b[k], rtol=1e-6)) for k in a)


def compare(run_dirs: list[str], split: str = "val") -> dict:
  """The comparison of `run_dirs` on `split` (the JSON written by --out)."""
  if split not in REPORTS:
    raise DataError(f"split: {split!r} is not one of {', '.join(REPORTS)}")
  if len(set(map(os.path.realpath, run_dirs))) != len(run_dirs):
    raise DataError(f"runs: a directory is given twice in {' '.join(run_dirs)}")
  configs = [_read_json(os.path.join(d, "config.json")) for d in run_dirs]
  names, diffs = run_names(configs, run_dirs)
  runs, missing, rows, baselines_from, differ = [], [], {}, None, []
  for name, run_dir, diff in zip(names, run_dirs, diffs):
    path = find_report(run_dir, split)
    if path is None:
      missing.append({"name": name, "dir": run_dir,
                      "expected": [os.path.join(run_dir, r) for r in REPORTS[split]]})
      continue
    report = _read_json(path)
    if MODEL not in report.get("summary", {}):
      raise DataError(f"{path}: no {MODEL!r} in its summary (not an evaluation report)")
    rows[name] = report["summary"][MODEL]
    runs.append({"name": name, "dir": run_dir, "report": path, "differs": diff,
                 "step": report.get("step"),
                 "images": report["summary"][MODEL][next(iter(rows[name]))]["n"]})
    if baselines_from is None:
      baselines_from, baselines = name, _baselines(report)
    elif not _same_scores(baselines, _baselines(report)):
      differ.append(name)
  if baselines_from is not None:
    rows.update(baselines)
  names_in_table = report_lib.ordered({k for s in rows.values() for k in s})
  return {"split": split, "runs": runs, "missing": missing,
          "rows": {m: {k: {"mean": s[k]["mean"], "std": s[k]["std"]}
                       for k in names_in_table if k in s} for m, s in rows.items()},
          "best": {k: sorted(report_lib.best_methods(rows, k))
                   for k in names_in_table},
          "metrics": names_in_table, "baselines_from": baselines_from,
          "baselines_differ": differ}


def to_markdown(result: dict) -> str:
  lines = [f"# Runs compared on the {result['split']} split", ""]
  names = result["metrics"]
  lines += report_lib.summary_table(result["rows"], names, "Run / method")
  lines += [f"| {m['name']} | " + " | ".join(["missing"] * len(names)) + " |"
            for m in result["missing"]]
  if result["baselines_from"]:
    lines += ["", f"Classical methods as scored in run {result['baselines_from']}."]
  if result["baselines_differ"]:
    lines += [f"**Not comparable:** the classical methods score differently in "
              f"{', '.join(result['baselines_differ'])}: other images or settings."]
  lines += ["", "## Runs", ""]
  body = [[r["name"], r["dir"], str(r["step"]), str(r["images"]), r["report"]]
          for r in result["runs"]]
  body += [[m["name"], m["dir"], "–", "–", "missing: " + " or ".join(m["expected"])]
           for m in result["missing"]]
  lines += report_lib.markdown_table(["Run", "Directory", "Step", "Images", "Report"],
                                     body)
  return "\n".join(lines) + "\n"


def write(result: dict, out_dir: str) -> str:
  """Writes out_dir/compare_<split>.{md,json}; returns the Markdown path."""
  os.makedirs(out_dir, exist_ok=True)
  stem = os.path.join(out_dir, f"compare_{result['split']}")
  with open(stem + ".json", "w") as f:
    json.dump(report_lib.json_safe(result), f, indent=2, allow_nan=False)
  with open(stem + ".md", "w") as f:
    f.write(to_markdown(result))
  return stem + ".md"


def main(argv: list[str]) -> int:
  """`compare RUN_DIR... [--split=val|test] [--out DIR]`; exit status."""
  split, out, run_dirs = "val", None, []
  args = iter(argv)
  for arg in args:
    if arg.startswith("--split="):
      split = arg.split("=", 1)[1]
    elif arg == "--out" or arg.startswith("--out="):
      out = arg.split("=", 1)[1] if "=" in arg else next(args, None)
    elif arg.startswith("-"):
      print(f"error: unknown flag {arg}; usage: python -m pansharp_jax.compare "
            "RUN_DIR... [--split=val|test] [--out DIR]", file=sys.stderr)
      return 2
    else:
      run_dirs.append(arg)
  if not run_dirs or (out is not None and not out):
    print("error: usage: python -m pansharp_jax.compare RUN_DIR... "
          "[--split=val|test] [--out DIR]", file=sys.stderr)
    return 2
  try:
    result = compare(run_dirs, split)
    print(to_markdown(result), end="")
    if out:
      print(f"wrote {write(result, out)} and its .json")
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
