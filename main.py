"""Command-line entry point: train, evaluate.

  python main.py --config configs/default.py --workdir runs/demo
  python main.py --config configs/base_256.py --config.optim.lr=1e-4 --workdir runs/b
  python main.py --config configs/default.py --workdir runs/demo --mode=evaluate
"""

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, reports).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate"], "What to do.")
flags.mark_flags_as_required(["config", "workdir"])


def _parse_flags(argv):
  """absl flag parsing with one-line errors for bad overrides (no traceback)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(str(e))
  except (AttributeError, KeyError) as e:  # ml_collections: unknown field
    _fail(f"config override: no such field {str(e).strip(chr(34))}")


def _fail(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Imported after flag parsing so `--help` stays fast.
  from pansharp_jax import config_checks, evaluate
  from pansharp_jax.data.errors import DataError
  from pansharp_jax.train import loop
  from pansharp_jax.train.logging import quiet_library_logs

  quiet_library_logs()

  config = _CONFIG.value
  try:
    config_checks.validate(config)
    if _MODE.value == "train":
      loop.train_and_evaluate(config, _WORKDIR.value)
    else:
      evaluate.evaluate_workdir(config, _WORKDIR.value)
  except (config_checks.ConfigError, DataError, FileNotFoundError) as e:
    _fail(str(e))


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
