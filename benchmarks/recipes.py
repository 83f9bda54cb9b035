"""CPU recipes on real-like data: full-resolution scenes to a report in minutes.

    python -m benchmarks.recipes --size=tiny --workdir=runs/recipe_tiny
    python -m benchmarks.recipes --size=tiny --workdir=runs/recipe_cnns \
        --models=pansharpener,pnn,pannet,dicnn,fusionnet

Writes full-resolution MS + PAN scene pairs (`--scenes`, once: the same
seed gives the same files) as 11-bit TIFFs, as a user's own imagery would
arrive: land cover through the sensor model of `data/synthetic.py` (material
spectra, a PAN response reaching the red edge, misregistration, blur, noise),
but at scene scale and without any Wald degradation. Then it runs
`main.py --config configs/default.py` with the size's recipe on them
(`data.source=geotiff`: each scene cut into tiles, its last row of tiles
held out, the left half for validation and the right half for test, each
split degraded by Wald's protocol with the QuickBird filters on its own
pixels) and prints the model's mean
metrics on the held-out tiles beside each classical baseline, with the run's
wall and CPU time. With `--models`, it trains each named network on the same
scenes with the same recipe and prints one table of all of them
(`pansharp_jax.compare`). The figures are in
docs/recipes.md.
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
import tifffile

from pansharp_jax import compare
from pansharp_jax.data import synthetic, wald

SIZE = flags.DEFINE_enum("size", "tiny", ["tiny", "small"], "Model size.")
WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.", required=True)
SCENES = flags.DEFINE_string("scenes", "runs/recipe_scenes",
                             "Folder of the MS/ and PAN/ scenes (written if absent).")
NUM_SCENES = flags.DEFINE_integer("num_scenes", 16, "Scenes to write.")
MS_SIZE = flags.DEFINE_integer("ms_size", 256, "MS side of a scene (px); PAN is 4x.")
OVERRIDES = flags.DEFINE_multi_string(
    "set", [], "Extra config overrides, e.g. --set=num_train_steps=500.")
MODELS = flags.DEFINE_list(
    "models", [], "config.model.name of several networks to train on the same "
    "scenes and recipe, each into WORKDIR/<name>, and compare in one table, "
    "e.g. --models=pansharpener,pnn,pannet,dicnn,fusionnet.")

_SEED, _BANDS, _RATIO, _SENSOR, _MAX_VALUE = 20261129, 4, 4, "QB", 2047
# (key, label, +1 where higher is better, -1 where lower is)
_METRICS = (("psnr", "PSNR (dB)", 1), ("sam", "SAM (deg)", -1),
            ("ergas", "ERGAS", -1), ("q2n", "Q2n", 1))

# Each recipe is a set of overrides of configs/default.py (which already has
# the tiny model, lr warmup and one cosine decay, batches of 4), sized to
# finish within 10 minutes on 2 CPU cores with compiles and evaluations.
RECIPES = {
    "tiny": {"model.size": "tiny", "num_train_steps": 800,
             "optim.lr": 3e-3, "optim.warmup_steps": 20,
             "optim.ema_decay": 0.98, "eval_every": 200},
    # model.dim=0: small's own width 32, not default.py's 24 (set for tiny);
    # full_refine=0: the network its figures measured, without the blocks.
    "small": {"model.size": "small", "model.dim": 0, "model.full_refine": 0,
              "batch_size": 2,
              "num_train_steps": 140,
              "optim.lr": 2e-3, "optim.warmup_steps": 10,
              "optim.ema_decay": 0.9, "eval_every": 70},
}
_DATA = {"data.source": "geotiff", "data.image_size": 64,
         "data.num_bands": _BANDS, "data.ratio": _RATIO,
         "data.sensor": _SENSOR, "data.max_value": _MAX_VALUE,
         "checkpoint_every": 10_000}


def write_scenes(root: str, count: int, ms_size: int) -> None:
  """ROOT/MS/scene_XX.tif (ms_size^2 x 4) and ROOT/PAN/scene_XX.tif (4x)."""
  gains = wald.ms_gains(_SENSOR, _BANDS)
  for index in range(count):
    name = f"scene_{index:02d}.tif"
    paths = [os.path.join(root, kind, name) for kind in ("MS", "PAN")]
    if all(os.path.exists(p) for p in paths):
      continue
    rng = np.random.default_rng([_SEED, index])
    images = synthetic.sensor_pair(rng, ms_size * _RATIO, _BANDS, gains, _RATIO)
    for path, image in zip(paths, images):
      os.makedirs(os.path.dirname(path), exist_ok=True)
      dn = np.rint(image * _MAX_VALUE).astype(np.uint16)
      tifffile.imwrite(path, dn, photometric="minisblack", planarconfig="contig")


def _table(mean: dict) -> str:
  """Markdown rows of the model and the baselines, and what the model wins."""
  lines = ["| method | " + " | ".join(label for _, label, _ in _METRICS) + " |",
           "|---|" + "---:|" * len(_METRICS)]
  for method, values in mean.items():
    lines.append(f"| {method} | " + " | ".join(
        f"{values[key]:.4g}" for key, _, _ in _METRICS) + " |")
  wins = [label for key, label, sign in _METRICS
          if all(sign * (mean["model"][key] - v[key]) > 0
                 for method, v in mean.items() if method != "model")]
  lines.append(f"\nthe model beats every baseline on: {', '.join(wins) or 'nothing'}")
  return "\n".join(lines)


def _run(workdir: str, settings: dict) -> tuple[float, float]:
  """Runs main.py with `settings` and the --set overrides into `workdir`;
  returns its wall and CPU (user + system) seconds."""
  command = [sys.executable, "main.py", "--config", "configs/default.py",
             "--workdir", workdir]
  command += [f"--config.{k}={v}" for k, v in settings.items()]
  command += [f"--config.{o}" for o in OVERRIDES.value]
  print(" ".join(command[1:]), flush=True)
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  subprocess.run(command, check=True)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
  return wall, cpu


def _compare_models(settings: dict) -> None:
  """Every --models network on the same scenes and recipe, each into
  WORKDIR/<name>; then one table of their reports (pansharp_jax.compare,
  written to WORKDIR/compare_val.{md,json}) and their times."""
  dirs, times = [], []
  for name in MODELS.value:
    dirs.append(os.path.join(WORKDIR.value, name))
    times.append(_run(dirs[-1], {**settings, "model.name": name}))
  result = compare.compare(dirs)
  compare.write(result, WORKDIR.value)
  print("\n" + compare.to_markdown(result))
  # By model name: the table's runs leave out a run without a report.
  print("| model.name | wall (s) | CPU (s) |\n|---|---:|---:|")
  for name, (wall, cpu) in zip(MODELS.value, times):
    print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


def main(argv):
  del argv
  start = time.perf_counter()
  write_scenes(SCENES.value, NUM_SCENES.value, MS_SIZE.value)
  print(f"scenes: {NUM_SCENES.value} in {SCENES.value} "
        f"({time.perf_counter() - start:.0f} s)", flush=True)
  settings = {**_DATA, "data.root": os.path.abspath(SCENES.value),
              **RECIPES[SIZE.value]}
  if MODELS.value:
    _compare_models(settings)
    return
  wall, cpu = _run(WORKDIR.value, settings)
  with open(os.path.join(WORKDIR.value, "eval", "report.json")) as f:
    report = json.load(f)
  print(f"\n{SIZE.value}: {wall:.0f} s wall, {cpu:.0f} s "
        f"CPU, {len(report['per_image']['model'])} held-out tiles, step {report['step']}\n")
  print(_table(report["mean"]))


if __name__ == "__main__":
  app.run(main)
