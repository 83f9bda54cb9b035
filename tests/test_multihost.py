"""Several processes for real: main.py (the tiny model of tests/train) as two
processes of two CPU devices each on localhost, joined by jax.distributed
(gloo), against one process of one device.

One run (2 x 2 devices) is killed -9 mid-training and resumed on one process
of 4 devices; its per-step losses must be those of the 1 x 1 run at the same
global batch, and --mode=evaluate on
two processes writes its report once. A process whose peer dies exits
non-zero within the heartbeat timeout; an unreachable coordinator is one line.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MAIN = os.path.join(ROOT, "tests", "train", "train_tiny.py")
STEPS = 24
FLAGS = ["--config.data.image_size=32", "--config.data.synthetic.scene_size=32",
         "--config.data.synthetic.num_train=8", "--config.data.synthetic.num_val=2",
         "--config.batch_size=4", "--config.optim.warmup_steps=2",
         "--config.log_every=1", "--config.eval_every=3",
         "--config.checkpoint_every=3", f"--config.num_train_steps={STEPS}",
         "--config.distributed.heartbeat_timeout=5",
         "--config.distributed.initialization_timeout=60"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
  # The suite's XLA flags and compilation cache (tests/conftest.py) carry over.
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip(),
             JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")
  env.update({k: str(v) for k, v in extra.items()})
  return env


def _launch(workdir, processes: int, devices: int, *flags) -> list[subprocess.Popen]:
  """`processes` copies of main.py, launched as a plain multi-process launch."""
  port = _free_port()
  launch = []
  for index in range(processes):
    extra = {} if processes == 1 else {
        "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
        "JAX_NUM_PROCESSES": processes, "JAX_PROCESS_ID": index}
    log = open(f"{workdir}.p{index}.log", "a")
    launch.append(subprocess.Popen(
        [sys.executable, TINY_MAIN, "--config", "configs/default.py",
         "--workdir", str(workdir), *FLAGS, *flags],
        cwd=ROOT, env=_env(devices, **extra), stdout=log, stderr=subprocess.STDOUT))
    log.close()
  return launch


def _log_tails(launch, workdir) -> str:
  return "".join(f"--- process {i}:\n" + open(f"{workdir}.p{i}.log").read()[-3000:]
                 for i in range(len(launch)))


def _wait(launch, workdir, timeout=300) -> list[int]:
  """Every process's exit code; fails with their logs when one exits
  non-zero or they outlast the timeout (killed: a hang leaves nothing)."""
  deadline = time.monotonic() + timeout
  try:
    codes = [p.wait(timeout=max(deadline - time.monotonic(), 1)) for p in launch]
  except subprocess.TimeoutExpired:
    _kill([p for p in launch if p.poll() is None])
    pytest.fail(f"still running after {timeout} s\n" + _log_tails(launch, workdir))
  assert codes == [0] * len(launch), _log_tails(launch, workdir)
  return codes


def _kill(launch):
  for p in launch:
    p.send_signal(signal.SIGKILL)
  for p in launch:
    p.wait(timeout=60)


def _wait_for(path, launch, workdir, timeout=300):
  """Until `path` exists; fails, with the processes' logs, when one of them
  exits first or the timeout passes."""
  deadline = time.monotonic() + timeout
  while not os.path.isdir(path):
    alive = [p.poll() is None for p in launch]
    if time.monotonic() > deadline or not all(alive):
      _kill([p for p, up in zip(launch, alive) if up])
      pytest.fail(f"no {path} after {timeout} s (processes alive: {alive})\n"
                  + _log_tails(launch, workdir))
    time.sleep(0.05)


def _losses(workdir) -> dict[int, float]:
  """Per-step train loss; a step logged again after a resume counts last."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return {r["step"]: r["loss"] for r in records if r["split"] == "train"}


def test_two_processes_train_resume_and_evaluate_as_one(tmp_path):
  two, one = tmp_path / "two", tmp_path / "one"
  reference = _launch(one, 1, 1)
  run = _launch(two, 2, 2)
  # Killed (both processes, -9) once a checkpoint after validations exists.
  _wait_for(os.path.join(two, "checkpoints", "6"), run, two)
  _kill(run)
  assert not os.path.exists(os.path.join(two, "eval", "report.json"))
  # Resumed from the newest checkpoint by one process of four devices: a
  # checkpoint of N processes continues on M, the same global batches.
  _wait(_launch(two, 1, 4), two)
  _wait(reference, one)

  want, got = _losses(one), _losses(two)
  assert sorted(got) == sorted(want) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([got[s] for s in want], list(want.values()), rtol=1e-5)
  with open(os.path.join(two, "eval", "report.json")) as f:
    report = json.load(f)
  with open(os.path.join(one, "eval", "report.json")) as f:
    assert report["mean"]["model"]["psnr"] == pytest.approx(
        json.load(f)["mean"]["model"]["psnr"], abs=1e-3)
  assert os.listdir(os.path.join(two, "best")) and os.path.isdir(
      os.path.join(two, "checkpoints", str(STEPS)))

  # Evaluation on both processes: one report, the training's final one.
  _wait(_launch(two, 2, 2, "--mode=evaluate"), two)
  with open(os.path.join(two, "eval", "val", "report.json")) as f:
    assert json.load(f)["mean"]["model"]["psnr"] == pytest.approx(
        report["mean"]["model"]["psnr"], abs=1e-4)


def _stopped_at(log_path) -> int:
  with open(log_path) as f:
    stops = [line for line in f if "; checkpoint saved." in line]
  assert len(stops) == 1, log_path
  return int(stops[0].split(" at step ")[1].split(";")[0])


def test_sigterm_to_one_process_stops_all_and_a_dead_peer_ends_the_others(tmp_path):
  workdir = tmp_path / "run"
  endless = "--config.num_train_steps=100000"
  run = _launch(workdir, 2, 2, endless)
  _wait_for(os.path.join(workdir, "checkpoints", "3"), run, workdir)
  # SIGTERM to one host: every host saves the same step and exits 0.
  run[1].send_signal(signal.SIGTERM)
  _wait(run, workdir)
  step = _stopped_at(f"{workdir}.p0.log")
  assert _stopped_at(f"{workdir}.p1.log") == step
  assert os.path.isdir(os.path.join(workdir, "checkpoints", str(step)))

  # Resumed, then one host killed -9: the other exits non-zero within the
  # heartbeat timeout (5 s here) instead of waiting forever.
  run = _launch(workdir, 2, 2, endless)
  _wait_for(os.path.join(workdir, "checkpoints", str(step + 3 - step % 3)), run, workdir)
  killed = time.monotonic()
  run[1].send_signal(signal.SIGKILL)
  code = run[0].wait(timeout=60)
  waited = time.monotonic() - killed
  assert code != 0
  assert waited < 5 + 15, waited   # the heartbeat timeout, and some slack
  with open(f"{workdir}.p0.log") as f:
    log = f.read()
  assert "another task died" in log
  # The suite's persistent cache (tests/conftest.py) is on in the environment:
  # with it, jax 0.12.1's resumed run hung in its first collective.
  assert "Persistent compilation cache off: 2 CPU processes" in log
  print(f"survivor exited {waited:.1f} s after its peer was killed")


def test_unreachable_coordinator_is_one_line():
  result = subprocess.run(
      [sys.executable, TINY_MAIN, "--config", "configs/default.py",
       "--workdir", "/nonexistent/never-made", *FLAGS,
       "--config.distributed.initialization_timeout=2"],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env=_env(1, JAX_COORDINATOR_ADDRESS=f"localhost:{_free_port()}",
               JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=1))
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("error: JAX_COORDINATOR_ADDRESS: localhost:"), lines
  assert "initialization_timeout=2 s" in lines[-1] and "Traceback" not in result.stderr
