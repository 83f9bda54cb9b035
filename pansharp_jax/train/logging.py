"""Metric sinks: WORKDIR/metrics.jsonl, TensorBoard events (tensorboardX) and the console."""

import json
import logging as std_logging
import os
import time

from absl import logging
import tensorboardX


class MetricWriter:
  """Writes one JSON line and one TensorBoard scalar set per logged step."""

  def __init__(self, workdir: str, enabled: bool = True):
    self._enabled = enabled
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
      self._tb.add_scalar(f"{prefix}/{key}", float(value), step)
    self._tb.flush()
    shown = " ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
    logging.info("[%s %d] %s", prefix, step, shown)

  def close(self):
    if self._enabled:
      self._jsonl.close()
      self._tb.close()


class _DropLibraryInfo(std_logging.Filter):
  """Drops INFO chatter from orbax/grain (they log each save step by step)."""

  def filter(self, record):
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "grain"))
    return record.levelno >= std_logging.WARNING or not noisy


def quiet_library_logs():
  std_logging.getLogger("absl").addFilter(_DropLibraryInfo())
