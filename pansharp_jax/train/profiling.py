"""A `jax.profiler` trace of a few train steps (`config.profile`).

The trace of steps [first_step, first_step + num_steps) that a run executes
(a resumed run starts at its first step if that is later) goes to
WORKDIR/profile/, as `plugins/profile/<run>/<host>.xplane.pb` for
TensorBoard's profile plugin (`tensorboard --logdir WORKDIR/profile`) or
XProf, and beside it `perfetto_trace.json.gz` for ui.perfetto.dev. Each
step is a `StepTraceAnnotation`, so the tools show per-step times.
"""

import contextlib
import os

from absl import logging
import jax


class StepTrace:
  """Starts the trace before the first chosen step, stops after the last."""

  def __init__(self, settings, workdir: str):
    self.first = int(settings.first_step)
    self.count = int(settings.num_steps)
    self.dir = os.path.join(workdir, "profile")
    self.traced = 0
    self.active = False

  def step(self, step: int):
    """Context of one train step: traced while the window lasts."""
    if self.count and self.traced < self.count and step >= self.first:
      if not self.active:
        jax.profiler.start_trace(self.dir, create_perfetto_trace=True)
        self.active = True
      self.traced += 1
      return jax.profiler.StepTraceAnnotation("train", step_num=step)
    return contextlib.nullcontext()

  def after(self, outputs) -> None:
    """Ends the trace once its last step's `outputs` are computed."""
    if self.active and self.traced == self.count:
      self.stop(outputs)

  def stop(self, outputs=None) -> None:
    """Ends an unfinished trace (a run that stops early); a no-op otherwise."""
    if not self.active:
      return
    jax.block_until_ready(outputs)
    jax.profiler.stop_trace()
    self.active = False
    logging.info("Profile of %d train steps written to %s", self.traced, self.dir)
