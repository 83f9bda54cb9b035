"""config.profile: a jax.profiler trace of the chosen train steps in
WORKDIR/profile/, and none when it is off."""

import glob
import os

from jax.profiler import ProfileData
import train_tiny

from pansharp_jax import commands


def _traces(workdir):
  return glob.glob(os.path.join(workdir, "profile", "plugins", "profile", "*",
                                "*.xplane.pb"))


def test_profile_traces_the_chosen_steps(tmp_path):
  config = train_tiny.config(num_train_steps=4, eval_every=4,
                             checkpoint_every=4, log_every=4)
  config.profile.first_step, config.profile.num_steps = 2, 2
  commands.train(config, str(tmp_path))
  traces = _traces(str(tmp_path))
  assert len(traces) == 1, traces
  # The StepTraceAnnotation of each traced step, and of no other.
  steps = [dict(event.stats)["step_num"]
           for plane in ProfileData.from_file(traces[0]).planes
           for line in plane.lines for event in line.events
           if event.name == "train"]
  assert sorted(steps) == [2, 3]
  # Perfetto's file beside it (ui.perfetto.dev does not read xplane.pb).
  assert os.path.exists(os.path.join(os.path.dirname(traces[0]),
                                     "perfetto_trace.json.gz"))


def test_no_profile_by_default(tmp_path):
  config = train_tiny.config(num_train_steps=2, eval_every=2,
                             checkpoint_every=2, log_every=2)
  assert config.profile.num_steps == 0
  commands.train(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "profile")
