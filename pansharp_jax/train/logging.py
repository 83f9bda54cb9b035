"""What a run reports: WORKDIR/metrics.jsonl, TensorBoard events (tensorboardX),
the console (absl log, or a tqdm bar on a terminal) and a parameter overview."""

import json
import logging as std_logging
import os
import time

from absl import logging
from clu import parameter_overview
import numpy as np
import tensorboardX
import tqdm


class MetricWriter:
  """Writes one JSON line, one TensorBoard scalar set and one console line per
  logged step. Only the chief process writes files."""

  def __init__(self, workdir: str, enabled: bool = True, console=None):
    self._enabled = enabled
    self._console = console or (lambda line: logging.info("%s", line))
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict[str, float], prefix: str = "train"):
    if not self._enabled:
      return
    record = {"step": step, "split": prefix, "time": time.time(),
              **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for key, value in metrics.items():
      if np.isfinite(value):  # a skipped step's NaN only makes TensorBoard warn
        self._tb.add_scalar(f"{prefix}/{key}", float(value), step)
    self._tb.flush()
    shown = " ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
    self._console(f"[{prefix} {step}] {shown}")

  def close(self):
    if self._enabled:
      self._jsonl.close()
      self._tb.close()


def average_metrics(history: list[dict[str, np.ndarray]]) -> dict[str, float]:
  """Means over the steps since the last log; skipped (non-finite) steps are
  counted, not averaged."""
  skipped = np.array([h["skipped"] for h in history], bool)
  out = {}
  for key in history[0]:
    if key in ("skipped", "nonfinite"):
      continue
    values = np.array([h[key] for h in history], np.float64)[~skipped]
    out[key] = float(values.mean()) if values.size else float("nan")
  out["skipped_steps"] = float(skipped.sum())
  return out


class Progress:
  """A tqdm bar over the training steps, shown only on a terminal."""

  def __init__(self, total: int, initial: int, enabled: bool):
    # disable=None: tqdm turns itself off when stderr is not a terminal.
    self._bar = tqdm.tqdm(total=total, initial=initial, unit="step",
                          dynamic_ncols=True,
                          disable=None if enabled else True)

  @property
  def active(self) -> bool:
    return not self._bar.disable

  def update(self):
    self._bar.update()

  def set_postfix(self, **values: float):
    self._bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()},
                          refresh=False)

  def write(self, line: str):
    """Prints above the bar without breaking it."""
    self._bar.write(line)

  def close(self):
    self._bar.close()


def log_parameter_overview(params, workdir: str | None = None):
  """Logs clu's parameter table; writes it to WORKDIR/parameters.txt too."""
  table = parameter_overview.get_parameter_overview(params, include_stats=False)
  logging.info("Parameters:\n%s", table)
  if workdir is not None:
    with open(os.path.join(workdir, "parameters.txt"), "w") as f:
      f.write(table + "\n")


class _DropLibraryInfo(std_logging.Filter):
  """Drops INFO chatter from orbax/grain (they log each save step by step)."""

  def filter(self, record):
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "grain"))
    return record.levelno >= std_logging.WARNING or not noisy


def quiet_library_logs():
  std_logging.getLogger("absl").addFilter(_DropLibraryInfo())
