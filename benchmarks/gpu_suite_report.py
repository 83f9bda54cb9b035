"""The files of benchmarks/gpu_suite.py: gpu_suite.json and gpu_suite.md.

Standard library only: the suite's parent process writes these and never
imports JAX (so it never claims GPU memory its children need).
"""

import json
import math
import os

STATUSES = ("ok", "failed", "skipped")
# Keys shown in a section's header line, not among its figures.
_HEADER_KEYS = ("status", "reason", "wall_s", "traceback", "rows")
_ROW_LAST = ("status", "reason")     # table columns kept at the right


class Skip(Exception):
  """A section or row that cannot run here; the message says why."""


class SectionError(Exception):
  """A section that failed part-way; `figures` holds what it measured."""

  def __init__(self, message: str, figures: dict | None = None):
    super().__init__(message)
    self.figures = figures or {}


def write_files(out_dir: str, meta: dict, results: dict[str, dict]):
  """Writes OUT/gpu_suite.json and OUT/gpu_suite.md, each atomically."""
  write_atomic(os.path.join(out_dir, "gpu_suite.json"),
               to_json({"suite": meta, **results}))
  write_atomic(os.path.join(out_dir, "gpu_suite.md"), markdown(meta, results))


def to_json(value) -> str:
  """Strict JSON: numpy / JAX values as plain ones, NaN and infinities as
  null, anything else unknown as its str()."""
  return json.dumps(_finite(value), indent=1, default=str,
                    allow_nan=False) + "\n"


def _finite(value):
  if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
    value = value.tolist()  # numpy / JAX scalars and arrays
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  return value


def write_atomic(path: str, text: str):
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def markdown(meta: dict, results: dict[str, dict]) -> str:
  lines = ["# GPU suite", ""]
  lines += _environment_header(meta, results.get("environment", {}))
  lines += ["", "| section | status | wall s | reason |", "|---|---|---:|---|"]
  for name, result in results.items():
    lines.append(f"| {name} | {result.get('status')} | "
                 f"{result.get('wall_s', '')} | "
                 f"{_cell(result.get('reason', ''), 160)} |")
  for name, result in results.items():
    lines += ["", f"## {name}: {result.get('status')} "
              f"({result.get('wall_s', '?')} s)", ""]
    if result.get("reason"):
      lines += [f"Reason: {_cell(result['reason'], 2000)}", ""]
    lines += _figures(result)
    if result.get("rows"):
      lines += [""] + table(result["rows"])
  return "\n".join(lines) + "\n"


def _environment_header(meta: dict, env: dict) -> list[str]:
  lines = [f"- command: `{meta.get('command', '')}`",
           f"- started {meta.get('started', '?')}; wall {meta.get('wall_s')} s "
           f"of a {meta.get('budget_s')} s budget; "
           + ("finished" if meta.get("finished") else
              f"NOT finished (running: {meta.get('running')})")]
  if env.get("status") == "ok":
    limit = env.get("bytes_limit")
    lines.append(
        f"- device: {env.get('device_count')} x {env.get('device_kind')} "
        f"({env.get('platform')}), memory limit "
        + (f"{limit / 2**30:.1f} GiB" if limit else "not reported"))
    versions = env.get("versions", {})
    lines.append("- versions: python " + str(env.get("python")) + ", " +
                 ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    lines.append(f"- XLA_FLAGS: `{(env.get('env') or {}).get('XLA_FLAGS') or ''}`")
  return lines


def _figures(result: dict) -> list[str]:
  """Bullets for a section's scalar and dict figures (long text stays in
  the JSON)."""
  lines = []
  for key, value in result.items():
    if key in _HEADER_KEYS:
      continue
    if isinstance(value, dict):
      value = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    elif isinstance(value, list):
      value = ", ".join(_fmt(v) for v in value)
    elif isinstance(value, str) and "\n" in value:
      value = "(multi-line text, in gpu_suite.json)"
    else:
      value = _fmt(value)
    lines.append(f"- {key}: {_cell(value, 800)}")
  return lines


def table(rows: list[dict]) -> list[str]:
  """A Markdown table of `rows`: every scalar key, status and reason last."""
  columns = []
  for row in rows:
    for key, value in row.items():
      if (key not in columns and key not in _ROW_LAST and key != "traceback"
          and not isinstance(value, (dict, list))):
        columns.append(key)
  columns += [k for k in _ROW_LAST if any(k in r for r in rows)]
  lines = ["| " + " | ".join(columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(_cell(_fmt(row.get(c, "")), 160)
                                   for c in columns) + " |")
  return lines


def _fmt(value) -> str:
  if isinstance(value, bool) or value is None:
    return "-" if value is None else str(value).lower()
  if isinstance(value, float):
    if value != value:  # NaN
      return "nan"
    return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.3e}"
  if isinstance(value, int):
    return f"{value:,}"
  return str(value)


def _cell(text, limit: int) -> str:
  text = " ".join(str(text).split()).replace("|", "\\|")
  return text if len(text) <= limit else text[:limit - 3] + "..."
