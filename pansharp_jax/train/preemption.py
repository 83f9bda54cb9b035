"""SIGTERM/SIGINT as a request to checkpoint and stop cleanly (SPEC §4).

Cluster schedulers send SIGTERM some seconds before killing a job. Inside
`StopRequest` the first SIGTERM or SIGINT only sets a flag that the loop polls
after each step; the loop then saves a checkpoint and returns. The previous
handler is put back at once, so a second Ctrl-C interrupts as usual.
"""

import signal
import threading

from absl import logging

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Context manager that turns SIGTERM/SIGINT into `requested`."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name
    signal.signal(signum, self._previous[signum])
    logging.warning("%s received: saving a checkpoint, then stopping "
                    "(send it again to stop now).", self.signal_name)

  def __enter__(self):
    # Python delivers signals to the main thread only; elsewhere do nothing.
    if threading.current_thread() is threading.main_thread():
      for signum in _SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False
