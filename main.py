"""Command-line entry point: train, evaluate, probe memory.

  python main.py --config configs/default.py --workdir runs/demo
  python main.py --config configs/base_256.py --config.optim.lr=1e-4 --workdir runs/b
  python main.py --config configs/default.py --workdir runs/demo --mode=evaluate
  python main.py --config configs/base_256.py --workdir runs/b --mode=probe
  python main.py --config configs/base_256.py --workdir runs/b --mode=predict \
      --ms ms.tif --pan pan.tif --out fused.tif

Training resumes from WORKDIR whenever it holds a checkpoint. SIGTERM/SIGINT
make it save a checkpoint and exit 0; the same command then continues.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, reports).")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "evaluate", "probe", "predict"],
    "train (auto-resumes), evaluate the newest checkpoint, probe: pick the "
    "largest batch size that fits the device memory and print the table, or "
    "predict: fuse a whole MS + PAN GeoTIFF scene.")
flags.mark_flags_as_required(["config", "workdir"])
# --mode=predict (docs/predict.md).
_MS = flags.DEFINE_string("ms", None, "predict: multispectral GeoTIFF.")
_PAN = flags.DEFINE_string("pan", None, "predict: panchromatic GeoTIFF.")
_OUT = flags.DEFINE_string("out", None, "predict: output GeoTIFF (a quicklook PNG is written beside it).")
_TILE_SIZE = flags.DEFINE_integer(
    "tile_size", 0, "predict: tile side in PAN pixels, a multiple of 4 x ratio "
    "(0: config.predict.tile_size if non-zero, else data.image_size).")
_TILE_OVERLAP = flags.DEFINE_integer(
    "tile_overlap", -1, "predict: blended overlap in PAN pixels, a multiple of "
    "ratio (-1: config.predict.overlap unless -1, else a quarter tile).")
_TILE_BATCH = flags.DEFINE_integer(
    "tile_batch", 0, "predict: tiles per model call (0: config.predict.batch_size "
    "if set, else eval_batch_size).")
_WEIGHTS = flags.DEFINE_enum(
    "weights", "latest", ["latest", "best"],
    "predict: EMA params of the newest checkpoint, or the exported best model.")


def _parse_flags(argv):
  """absl flag parsing with one-line errors for bad overrides (no traceback)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(str(e))
  except (AttributeError, KeyError) as e:  # ml_collections: unknown field
    _fail(f"config override: no such field {str(e).strip(chr(34))}")


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def _check_workdir(path: str, create: bool):
  """An unusable run directory is one line, not an OSError traceback later."""
  if os.path.exists(path) and not os.path.isdir(path):
    _fail(f"--workdir {path}: exists and is not a directory")
  if create:
    try:
      os.makedirs(path, exist_ok=True)
    except OSError as e:
      _fail(f"--workdir {path}: cannot create it ({e.strerror})")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _MODE.value == "predict":
    missing = [f"--{f.name}" for f in (_MS, _PAN, _OUT) if not f.value]
    if missing:
      _fail(f"--mode=predict needs {', '.join(missing)}")
  # Imported after flag parsing so `--help` stays fast.
  from pansharp_jax import config_checks, evaluate, predict
  from pansharp_jax.data.errors import DataError
  from pansharp_jax.train import checkpoint, loop, memory, parallel
  from pansharp_jax.train.logging import quiet_library_logs

  quiet_library_logs()
  parallel.initialize_distributed()

  config = _CONFIG.value
  try:
    config_checks.validate(config)
    _check_workdir(_WORKDIR.value, create=_MODE.value in ("train", "probe"))
    if _MODE.value == "train":
      loop.train_and_evaluate(config, _WORKDIR.value)
    elif _MODE.value == "probe":
      memory.run_probe(config, _WORKDIR.value)
    elif _MODE.value == "predict":
      predict.predict_files(
          config, _WORKDIR.value, _MS.value, _PAN.value, _OUT.value,
          tile=_TILE_SIZE.value, overlap=_TILE_OVERLAP.value,
          batch=_TILE_BATCH.value, weights=_WEIGHTS.value)
    else:
      evaluate.evaluate_workdir(config, _WORKDIR.value)
  except (config_checks.ConfigError, DataError, FileNotFoundError,
          checkpoint.CheckpointError) as e:
    _fail(str(e))
  except memory.ProbeError as e:
    print(memory.format_table(e.result))
    _fail(str(e))
  except loop.NonFiniteLossError as e:
    _fail(str(e), code=1)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
