"""The errors a user can cause, each reported by main.py as one line.

Every message starts with what is wrong (a config field, a file, a
checkpoint folder) so `error: <message>` needs no traceback. This module is
the bottom floor: it imports nothing from the package.
"""


class ConfigError(ValueError):
  """An invalid config value; the message starts with the field name."""


class DataError(ValueError):
  """Bad input data: missing/unreadable/inconsistent files or values."""


class CheckpointError(RuntimeError):
  """No checkpoint to use, or none in a folder that has some could be restored."""


class EvaluationError(RuntimeError):
  """Scoring a split failed; the message names the split and what was saved."""


class LaunchError(RuntimeError):
  """The processes of a multi-process launch could not form (or lost) a cluster."""


def require(condition: bool, where: str, problem: str) -> None:
  """Raises DataError('<where>: <problem>') unless `condition` holds."""
  if not condition:
    raise DataError(f"{where}: {problem}")
