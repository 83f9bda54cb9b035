"""Command-line entry point: train, evaluate, probe memory, predict, adapt.

  python main.py --config configs/default.py --workdir runs/demo
  python main.py --config configs/base_256.py --config.optim.lr=1e-4 --workdir runs/b
  python main.py --config configs/default.py --workdir runs/demo --mode=evaluate --split=test
  python main.py --config configs/base_256.py --workdir runs/b --mode=probe
  python main.py --config configs/base_256.py --workdir runs/b --mode=predict \
      --ms ms.tif --pan pan.tif --out fused.tif
  python main.py --config configs/base_256.py --workdir runs/b --mode=adapt \
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
    "mode", "train", ["train", "evaluate", "probe", "predict", "adapt"],
    "train (auto-resumes); evaluate: score a split; probe: pick the largest "
    "batch size that fits the device memory and print the table; predict: "
    "fuse a whole MS + PAN GeoTIFF scene; adapt: fine-tune on that scene "
    "first (full-resolution losses), then fuse it.")
flags.mark_flags_as_required(["config", "workdir"])
# --mode=evaluate.
_SPLIT = flags.DEFINE_enum("split", "val", ["val", "test"], "evaluate: the split to score.")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", "auto", ["auto", "reduced", "full"],
    "evaluate: reduced resolution (against GT), full resolution (no "
    "reference: QNR), or auto (reduced where the split has GT).")
# --mode=predict and adapt (docs/predict.md).
_MS = flags.DEFINE_string("ms", None, "predict/adapt: multispectral GeoTIFF.")
_PAN = flags.DEFINE_string("pan", None, "predict/adapt: panchromatic GeoTIFF.")
_OUT = flags.DEFINE_string("out", None, "predict/adapt: output GeoTIFF (quicklook "
                           "and metrics beside it).")
_WEIGHTS = flags.DEFINE_enum(
    "weights", "latest", ["latest", "best"],
    "evaluate/predict/adapt: EMA params of the newest checkpoint, or the "
    "exported best model.")


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
  if _MODE.value in ("predict", "adapt"):
    missing = [f"--{f.name}" for f in (_MS, _PAN, _OUT) if not f.value]
    if missing:
      _fail(f"--mode={_MODE.value} needs {', '.join(missing)}")
  # Imported after flag parsing so `--help` stays fast.
  from pansharp_jax import commands, config_checks, errors
  from pansharp_jax.ops import gpu_targets
  from pansharp_jax.train import gpu_compile, loop, memory, parallel
  from pansharp_jax.train.logging import quiet_library_logs

  quiet_library_logs()

  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    config_checks.validate(config)
    if config.probe.target:
      # Every other mode runs on this host: the target's CPU-only switch
      # and its pass on the fused scan's device check must not reach them.
      if _MODE.value != "probe":
        raise errors.ConfigError(
            "config.probe.target: only --mode=probe compiles for a GPU that is "
            f"not here; --mode={_MODE.value} runs on this host's devices")
      gpu_compile.compile_on_cpu()  # before anything starts a backend
      gpu_targets.require()
    parallel.initialize_distributed(config)
    config_checks.validate_devices(config)  # starts the backend: after the above
    _check_workdir(_WORKDIR.value, create=_MODE.value in ("train", "probe"))
    if _MODE.value == "train":
      commands.train(config, workdir)
    elif _MODE.value == "probe":
      commands.probe(config, workdir)
    elif _MODE.value in ("predict", "adapt"):
      command = commands.predict if _MODE.value == "predict" else commands.adapt
      command(config, workdir, _MS.value, _PAN.value, _OUT.value,
              weights=_WEIGHTS.value)
    else:
      commands.evaluate(config, workdir, _SPLIT.value, protocol=_PROTOCOL.value,
                        weights=_WEIGHTS.value)
  except (errors.ConfigError, errors.DataError, errors.CheckpointError,
          errors.LaunchError, FileNotFoundError) as e:
    _fail(str(e))
  except memory.ProbeError as e:
    print(memory.format_table(e.result))
    _fail(str(e))
  except (loop.NonFiniteLossError, errors.EvaluationError) as e:
    _fail(str(e), code=1)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
