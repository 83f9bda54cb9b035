"""Networks against each other and the classical methods, per sensor preset.

    python -m benchmarks.presets --workdir=runs/presets \
        --presets=ikonos,wv2,landsat8 --models=pansharpener,fusionnet,dicnn \
        --seeds=0,1 --steps=600 [--set=model.head=sigmoid --tag=sigmoid]

Each (preset, model, seed) is one `main.py --config configs/default.py` run
on the synthetic source with that sensor preset (`data/presets.py`; `demo`:
the README demo's unnamed sensor), 32 px tiles, 256 training scenes and 32
validation scenes of their own seed stream, `--steps` steps of the default
recipe and one evaluation at the end, into
WORKDIR/<preset>/<tag or model>_s<seed>/ (a run with a report is not run
again). Its wall and CPU (user + system of the process: the machine may be
shared) seconds go to `time.json` beside the report. Prints, per preset, the
mean over the seeds of each network's ERGAS and Q2n on the validation tiles
and the best classical method's, and each network's CPU seconds; the
figures are in docs/recipes.md.
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks.preset_runs import run_settings
from pansharp_jax.data import presets

WORKDIR = flags.DEFINE_string("workdir", None, "Root of the runs.", required=True)
PRESETS = flags.DEFINE_list("presets", ["ikonos", "wv2", "landsat8"],
                            f"Sensor presets: {', '.join(presets.PRESETS)} or demo.")
MODELS = flags.DEFINE_list("models", ["pansharpener", "fusionnet", "dicnn"],
                           "config.model.name of each network.")
SEEDS = flags.DEFINE_list("seeds", ["0"], "config.seed of each run (data and init).")
STEPS = flags.DEFINE_integer("steps", 600, "Training steps of every run.")
SIZE = flags.DEFINE_integer("image_size", 32, "Tile side (PAN/GT px).")
OVERRIDES = flags.DEFINE_multi_string(
    "set", [], "Extra config overrides of the runs, e.g. --set=model.head=sigmoid.")
TAG = flags.DEFINE_string("tag", "", "Run folder prefix instead of the model "
                          "name (an ablation row); one model only.")

_METRICS = ("ergas", "q2n")
_CLASSICAL = ("EXP", "BT-H", "GS", "GSA", "MTF-GLP-FS", "MTF-GLP-HPM")


def train(workdir: str, settings: dict, extra: list[str]) -> dict:
  """Runs main.py into `workdir` unless it has a report; returns its times."""
  times_path = os.path.join(workdir, "time.json")
  if os.path.exists(os.path.join(workdir, "eval", "report.json")):
    with open(times_path) as f:
      return json.load(f)
  command = [sys.executable, "main.py", "--config", "configs/default.py",
             "--workdir", workdir]
  command += [f"--config.{k}={v}" for k, v in settings.items()]
  command += [f"--config.{o}" for o in extra]
  print(" ".join(command[1:]), flush=True)
  os.makedirs(workdir, exist_ok=True)
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  with open(os.path.join(workdir, "log.txt"), "w") as log:
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  times = {"wall": time.perf_counter() - start,
           "cpu": (after.ru_utime + after.ru_stime) -
                  (before.ru_utime + before.ru_stime)}
  with open(times_path, "w") as f:
    json.dump(times, f)
  return times


def read_mean(workdir: str) -> dict:
  with open(os.path.join(workdir, "eval", "report.json")) as f:
    return json.load(f)["mean"]


def summarise(preset: str, rows: dict) -> str:
  """Markdown: each network's mean over seeds, then the best classical."""
  lines = [f"\n### {preset}\n", "| network | ERGAS ↓ | Q2n ↑ | CPU s |",
           "|---|---:|---:|---:|"]
  for name, runs in rows.items():
    ergas = np.mean([r["mean"]["model"]["ergas"] for r in runs])
    q2n = np.mean([r["mean"]["model"]["q2n"] for r in runs])
    cpu = np.mean([r["time"]["cpu"] for r in runs])
    lines.append(f"| {name} | {ergas:.3f} | {q2n:.4f} | {cpu:.0f} |")
  # The classical methods score the same tiles in every run of a seed.
  runs = next(iter(rows.values()))
  for key, best in (("ergas", min), ("q2n", max)):
    per_method = {m: np.mean([r["mean"][m][key] for r in runs])
                  for m in _CLASSICAL}
    method = best(per_method, key=per_method.get)
    cells = (f"{per_method[method]:.3f} | " if key == "ergas"
             else f" | {per_method[method]:.4f}")
    lines.append(f"| best classical {key} ({method}) | {cells} | |")
  return "\n".join(lines)


def main(argv):
  del argv
  if TAG.value and len(MODELS.value) != 1:
    raise app.UsageError("--tag names one model's runs; give one --models")
  for preset in PRESETS.value:
    rows = {}
    for name in MODELS.value:
      label = TAG.value or name
      rows[label] = []
      for seed in SEEDS.value:
        workdir = os.path.join(WORKDIR.value, preset, f"{label}_s{seed}")
        settings = {**run_settings(preset, seed, STEPS.value, SIZE.value),
                    "model.name": name}
        times = train(workdir, settings, OVERRIDES.value)
        rows[label].append({"mean": read_mean(workdir), "time": times})
    print(summarise(preset, rows), flush=True)


if __name__ == "__main__":
  app.run(main)
