"""One table across run directories (ablations): their reports side by side.

  python -m pansharp_jax.compare runs/a runs/b runs/c [--split=val|test] [--strict] [--out DIR]

Each run is named by what its `config.json` differs in from the other runs'
(`optim.lr=0.001, model.name=pnn`); the table has its model row, mean ± std
per metric, then the classical methods once (they score the same images in
every run; where a run's baselines differ, the table says so), the best
mean of each column in bold. A run without a report for the split is
listed as missing, not left out. Each report's split, weights, step,
protocol and data source are read: runs that differ in one from the others
(all of them where no value is the most common) are marked (†) and named in
a line above the table (the step only where num_train_steps is not
what the runs differ in), and `--strict` refuses such a table. A malformed run
(a config or report that is not a JSON object, a metric without mean, std or
n) is one line naming the file and field. Prints the Markdown; with `--out`,
writes `DIR/compare_<split>.{md,json}` too.

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


# What a report was scored under; runs that differ in one are a mixed table.
SETTINGS = ("split", "weights", "step", "protocol", "source")
MARK = "†"


def _read_json(path: str, what: str) -> dict:
  """The JSON object in `path` (`what` it should be, for the error)."""
  try:
    with open(path) as f:
      data = json.load(f)
  except FileNotFoundError:
    raise DataError(f"{path}: not found (not a run directory?)") from None
  except (OSError, json.JSONDecodeError) as e:
    raise DataError(f"{path}: unreadable JSON ({e})") from None
  if not isinstance(data, dict):
    raise DataError(f"{path}: a JSON {type(data).__name__}, not {what} (an object)")
  return data


def _checked_summary(report: dict, path: str) -> dict:
  """The report's summary, {method: {metric: {mean, std, n}}}, each field checked."""
  summary = report.get("summary")
  if not isinstance(summary, dict) or MODEL not in summary:
    raise DataError(f"{path}: summary: no {MODEL!r} in it (not an evaluation report)")
  for method, per in summary.items():
    if not isinstance(per, dict) or not per:
      raise DataError(f"{path}: summary.{method}: no metrics in it")
    for metric, stats in per.items():
      where = f"{path}: summary.{method}.{metric}"
      if not isinstance(stats, dict):
        raise DataError(f"{where}: not an object of mean, std and n")
      for field in ("mean", "std", "n"):
        value = stats.get(field)
        if field not in stats or not (value is None or isinstance(value, (int, float))):
          raise DataError(f"{where}.{field}: {'missing' if field not in stats else 'not a number'}")
  return summary


def mixed_settings(runs: list[dict]) -> dict[str, dict]:
  """{setting: {value: [run names]}} for each of SETTINGS on which `runs`
  disagree. The step is left out when the runs' configs differ in
  num_train_steps (then it is what is compared)."""
  mixed = {}
  for setting in SETTINGS:
    if setting == "step" and any("num_train_steps" in r["differs"] for r in runs):
      continue
    values = {}
    for run in runs:
      values.setdefault(json.dumps(run["settings"][setting]), []).append(run["name"])
    if len(values) > 1:
      mixed[setting] = {json.loads(v): names for v, names in values.items()}
  return mixed


def _outliers(mixed: dict) -> set[str]:
  """Runs outside the most common value of some mixed setting; where no
  value is the most common (a tie), every run of that setting: which of the
  runs was listed first says nothing about which setting is the odd one."""
  marked = set()
  for values in mixed.values():
    groups = sorted(values.values(), key=len, reverse=True)
    tie = len(groups[0]) == len(groups[1])
    for names in groups if tie else groups[1:]:
      marked.update(names)
  return marked


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


def compare(run_dirs: list[str], split: str = "val", strict: bool = False) -> dict:
  """The comparison of `run_dirs` on `split` (the JSON written by --out).

  Runs whose reports differ in a setting (SETTINGS) are marked; `strict`
  refuses such a table (DataError naming the setting and the runs).
  """
  if split not in REPORTS:
    raise DataError(f"split: {split!r} is not one of {', '.join(REPORTS)}")
  if len(set(map(os.path.realpath, run_dirs))) != len(run_dirs):
    raise DataError(f"runs: a directory is given twice in {' '.join(run_dirs)}")
  configs = [_read_json(os.path.join(d, "config.json"), "a run's config")
             for d in run_dirs]
  names, diffs = run_names(configs, run_dirs)
  runs, missing, rows, baselines_from, differ = [], [], {}, None, []
  for name, run_dir, diff in zip(names, run_dirs, diffs):
    path = find_report(run_dir, split)
    if path is None:
      missing.append({"name": name, "dir": run_dir,
                      "expected": [os.path.join(run_dir, r) for r in REPORTS[split]]})
      continue
    report = _read_json(path, "an evaluation report")
    summary = _checked_summary(report, path)
    rows[name] = summary[MODEL]
    runs.append({"name": name, "dir": run_dir, "report": path, "differs": diff,
                 "step": report.get("step"),
                 "settings": {k: report.get(k) for k in SETTINGS},
                 "images": next(iter(rows[name].values()))["n"]})
    if baselines_from is None:
      baselines_from, baselines = name, _baselines(report)
    elif not _same_scores(baselines, _baselines(report)):
      differ.append(name)
  mixed = mixed_settings(runs)
  if strict and mixed:
    raise DataError("--strict: the runs were scored under different settings: "
                    + _describe(mixed))
  marked = _outliers(mixed)
  for run in runs:
    run["marked"] = run["name"] in marked
  rows = {f"{name} {MARK}" if name in marked else name: row for name, row in rows.items()}
  if baselines_from is not None:
    rows.update(baselines)
  names_in_table = report_lib.ordered({k for s in rows.values() for k in s})
  return {"split": split, "runs": runs, "missing": missing, "mixed": mixed,
          "rows": {m: {k: {"mean": s[k]["mean"], "std": s[k]["std"]}
                       for k in names_in_table if k in s} for m, s in rows.items()},
          "best": {k: sorted(report_lib.best_methods(rows, k))
                   for k in names_in_table},
          "metrics": names_in_table, "baselines_from": baselines_from,
          "baselines_differ": differ}


def _describe(mixed: dict) -> str:
  """'weights: best (run a), latest (runs b, c); step: ...' in one line."""
  parts = []
  for setting, values in mixed.items():
    groups = ", ".join(f"{'unknown' if v is None else v} ({', '.join(names)})"
                       for v, names in values.items())
    parts.append(f"{setting}: {groups}")
  return "; ".join(parts)


def to_markdown(result: dict) -> str:
  lines = [f"# Runs compared on the {result['split']} split", ""]
  notes = []
  if result["mixed"]:
    notes += [f"**Mixed settings** (rows marked {MARK} differ from the others): "
              f"{_describe(result['mixed'])}."]
  # Said whether or not the runs agree: even all of them on best weights
  # are scored optimistically, beside baselines that chose nothing.
  if any(r["settings"]["weights"] == "best" and r["settings"]["split"] == "val"
         for r in result["runs"]):
    notes += ["Best weights on the val split are scored on the images that chose them."]
  lines += notes + ([""] if notes else [])
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
  body = [[r["name"] + (f" {MARK}" if r["marked"] else ""), r["dir"], str(r["step"]),
           str(r["settings"]["weights"] or "–"), str(r["images"]), r["report"]]
          for r in result["runs"]]
  body += [[m["name"], m["dir"], "–", "–", "–", "missing: " + " or ".join(m["expected"])]
           for m in result["missing"]]
  lines += report_lib.markdown_table(
      ["Run", "Directory", "Step", "Weights", "Images", "Report"], body)
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


USAGE = "python -m pansharp_jax.compare RUN_DIR... [--split=val|test] [--strict] [--out DIR]"


def main(argv: list[str]) -> int:
  """`compare RUN_DIR... [--split=val|test] [--strict] [--out DIR]`; exit status."""
  split, out, strict, run_dirs = "val", None, False, []
  args = iter(argv)
  for arg in args:
    if arg.startswith("--split="):
      split = arg.split("=", 1)[1]
    elif arg == "--strict":
      strict = True
    elif arg == "--out" or arg.startswith("--out="):
      out = arg.split("=", 1)[1] if "=" in arg else next(args, None)
    elif arg.startswith("-"):
      print(f"error: unknown flag {arg}; usage: {USAGE}", file=sys.stderr)
      return 2
    else:
      run_dirs.append(arg)
  if not run_dirs or (out is not None and not out):
    print(f"error: usage: {USAGE}", file=sys.stderr)
    return 2
  try:
    result = compare(run_dirs, split, strict)
    print(to_markdown(result), end="")
    if out:
      print(f"wrote {write(result, out)} and its .json")
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
