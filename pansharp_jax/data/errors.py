"""The one error type for bad input data.

Raised with a one-line message that names the file (or config field) and the
problem; `main.py` prints it without a traceback and exits non-zero.
"""


class DataError(ValueError):
  """Bad input data: missing/unreadable/inconsistent files or values."""


def require(condition: bool, where: str, problem: str) -> None:
  """Raises DataError('<where>: <problem>') unless `condition` holds."""
  if not condition:
    raise DataError(f"{where}: {problem}")
