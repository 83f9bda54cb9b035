"""Command-line entry point: train, evaluate, probe memory.

  python main.py --config configs/default.py --workdir runs/demo
  python main.py --config configs/base_256.py --config.optim.lr=1e-4 --workdir runs/b
  python main.py --config configs/default.py --workdir runs/demo --mode=evaluate
  python main.py --config configs/base_256.py --workdir runs/b --mode=probe

Training resumes from WORKDIR whenever it holds a checkpoint. SIGTERM/SIGINT
make it save a checkpoint and exit 0; the same command then continues.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, reports).")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "evaluate", "probe"],
    "train (auto-resumes), evaluate the newest checkpoint, or probe: pick the "
    "largest batch size that fits the device memory and print the table.")
flags.mark_flags_as_required(["config", "workdir"])


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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Imported after flag parsing so `--help` stays fast.
  from pansharp_jax import config_checks, evaluate
  from pansharp_jax.data.errors import DataError
  from pansharp_jax.train import checkpoint, loop, memory, parallel
  from pansharp_jax.train.logging import quiet_library_logs

  quiet_library_logs()
  parallel.initialize_distributed()

  config = _CONFIG.value
  try:
    config_checks.validate(config)
    if _MODE.value == "train":
      loop.train_and_evaluate(config, _WORKDIR.value)
    elif _MODE.value == "probe":
      memory.run_probe(config, _WORKDIR.value)
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
