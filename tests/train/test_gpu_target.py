"""--mode=probe for a GPU that is not here (config.probe.target): the option's
checks and one-line errors, and, where the CUDA plugin and ptxas are
installed (`pip install -e ".[gpu-compile]"`, .ci/run's gpu-compile leg), the
memory table of the train step compiled deviceless for it, against XLA's
memory_analysis of the same step built here independently.

Runs on train_tiny's stand-in model (tests/train/conftest.py), which
compiles for an H100 in seconds.
"""

import json
import os
import subprocess
import sys

import jax
from jax.experimental import topologies
from jax.sharding import NamedSharding, PartitionSpec as P
import pytest
import train_tiny

from pansharp_jax import config_checks
from pansharp_jax.errors import ConfigError
from pansharp_jax.ops import gpu_targets
from pansharp_jax.train import builder, gpu_compile, memory, step as step_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_plugin = pytest.mark.skipif(
    gpu_targets.missing() is not None,
    reason=f"deviceless GPU compile: {gpu_targets.missing()}")


def _main(args, tmp_path):
  """main.py with the tiny model (train_tiny.py) at 32 px; the result.
  Without the suite's JAX_PLATFORMS=cpu: main.py keeps off CUDA itself."""
  command = [sys.executable, "tests/train/train_tiny.py", "--config",
             "configs/default.py", f"--workdir={tmp_path / 'run'}", "--mode=probe",
             *train_tiny.FLAGS, *args]
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                        timeout=600, env=dict(env, PYTHONPATH=ROOT))


def _one_error_line(result):
  assert result.returncode == 2, result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  return errors[0]


def test_unknown_gpu_is_one_line(tmp_path):
  line = _one_error_line(_main(["--config.probe.target=v100"], tmp_path))
  assert line == ("error: config.probe.target: unknown GPU 'v100'; one of a100, "
                  "h100, h200 (or empty: this host's devices)")


@pytest.mark.parametrize("mode", ["train", "evaluate"])
def test_only_probe_takes_a_target(mode):
  """Other modes run here: neither the CPU-only switch nor the fused scan's
  pass on its device check may reach them."""
  config = train_tiny.config()
  config.probe.target = "h100"
  config_checks.validate(config)  # a valid field; main.py refuses it elsewhere
  result = subprocess.run(
      [sys.executable, "tests/train/train_tiny.py", "--config", "configs/default.py",
       "--workdir=/nonexistent/run", f"--mode={mode}", *train_tiny.FLAGS,
       "--config.probe.target=h100", "--config.model.scan_method=fused"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=ROOT))
  assert _one_error_line(result) == (
      "error: config.probe.target: only --mode=probe compiles for a GPU that "
      f"is not here; --mode={mode} runs on this host's devices")


def test_missing_plugin_says_what_to_install(monkeypatch):
  monkeypatch.setattr(gpu_targets, "_spec", lambda module: None)
  with pytest.raises(ConfigError) as e:
    gpu_targets.require()
  message = str(e.value)
  assert message.startswith("config.probe.target: compiling for a GPU without "
                            "one needs the CUDA plugin")
  assert f"jax-cuda12-plugin and jax-cuda12-pjrt {jax.__version__}" in message
  assert message.endswith('pip install -e ".[gpu-compile]"')


def test_missing_ptxas_says_what_to_install(monkeypatch):
  monkeypatch.setattr(gpu_targets, "_spec", lambda module: object())
  monkeypatch.setattr(gpu_targets, "ptxas_path", lambda: None)
  with pytest.raises(ConfigError, match=r"ptxas is not installed \(the "
                     r"nvidia-cuda-nvcc-cu12 wheel\): pip install"):
    gpu_targets.require()


def test_ptxas_is_looked_for_where_xla_looks(monkeypatch, tmp_path):
  monkeypatch.setattr(gpu_targets, "_spec", lambda module: None)
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))
  monkeypatch.setattr(gpu_targets, "DEFAULT_PTXAS", str(tmp_path / "none" / "ptxas"))
  fake = tmp_path / "cuda" / "bin" / "ptxas"
  fake.parent.mkdir(parents=True)
  fake.write_text("#!/bin/sh\n")
  monkeypatch.setenv("CUDA_ROOT", str(tmp_path / "cuda"))
  assert gpu_targets.ptxas_path() is None  # not executable: not usable
  fake.chmod(0o755)
  assert gpu_targets.ptxas_path() == str(fake)


@pytest.mark.skipif(gpu_targets.missing() is None,
                    reason="the CUDA plugin and ptxas are installed")
def test_probe_target_without_plugin_is_one_line(tmp_path):
  line = _one_error_line(_main(["--config.probe.target=h100"], tmp_path))
  assert line.startswith("error: config.probe.target: compiling for a GPU "
                         "without one needs ")
  assert line.endswith('pip install -e ".[gpu-compile]"')


def test_deviceless_attention_is_the_chunked_fallback():
  config = train_tiny.config()
  assert config.model.attn_impl == "auto"
  assert gpu_compile.deviceless_config(config).model.attn_impl == "chunked"
  assert config.model.attn_impl == "auto"  # a copy
  config.model.attn_impl = "cudnn"
  with pytest.raises(ConfigError, match="config.model.attn_impl: 'cudnn' cannot "
                     "be compiled without a GPU"):
    gpu_compile.deviceless_config(config)


@needs_plugin
@pytest.mark.parametrize("name", sorted(gpu_targets.TARGETS))
def test_target_devices_are_the_named_gpu(name):
  devices = gpu_targets.topology(name, 2).devices
  assert [d.device_kind for d in devices] == [gpu_targets.TARGETS[name].description] * 2
  assert {d.platform for d in devices} == {"gpu"}


def _independent_analysis(config, batch_size):
  """memory_analysis of the train step compiled here for one H100, built
  without the probe's code (its own topology, mesh and jit)."""
  topology = topologies.get_topology_desc(
      platform="cuda", target_config=gpu_targets.target_config("h100"),
      topology="1x1x1")
  mesh = jax.sharding.Mesh(topology.devices, ("data",))
  replicated, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  step = jax.jit(step_lib.make_train_step(model, optimizer, config),
                 in_shardings=(replicated, rows),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))
  state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                         jax.random.PRNGKey(0))
  size, bands = int(config.data.image_size), int(config.data.num_bands)
  shapes = {"gt": (size, size, bands), "ms": (size // 4, size // 4, bands),
            "lms": (size, size, bands), "pan": (size, size, 1)}
  batch = {k: jax.ShapeDtypeStruct((batch_size, *s), "float32", sharding=rows)
           for k, s in shapes.items()}
  return step.lower(state, batch).compile().memory_analysis()


@needs_plugin
def test_target_probe_measures_the_compiled_step(monkeypatch):
  config = train_tiny.config()
  config.probe.target, config.probe.max_batch_size = "h100", 4
  need = {b: _independent_analysis(config, b) for b in (4, 2)}
  total = {b: (a.argument_size_in_bytes + a.output_size_in_bytes +
               a.temp_size_in_bytes - a.alias_size_in_bytes) for b, a in need.items()}
  assert total[2] < total[4]
  # An allocator share whose budget lies between the needs of batch 2 and 4.
  memory_bytes = gpu_targets.TARGETS["h100"].memory_bytes
  share = (total[2] + total[4]) / 2 / 0.9 / memory_bytes
  monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", repr(share))
  config.probe.memory_fraction = 0.9
  result = memory.probe_target(config)

  assert result.batch_size == 2
  assert result.budget.limit == int(memory_bytes * share)
  assert "NVIDIA H100 80GB HBM3" in result.budget.source
  rows = result.measurements
  assert [m.batch_size for m in rows] == [4, 2]
  assert [m.fits for m in rows] == [False, True]
  assert [m.step for m in rows] == ["", ""]  # nothing runs on a target
  for m in rows:
    a = need[m.batch_size]
    assert (m.argument, m.output, m.temp, m.alias) == (
        a.argument_size_in_bytes, a.output_size_in_bytes,
        a.temp_size_in_bytes, a.alias_size_in_bytes)


@needs_plugin
def test_probe_mode_for_two_h100_prints_the_table(tmp_path):
  result = _main(["--config.probe.target=h100", "--config.probe.target_devices=2",
                  "--config.probe.max_batch_size=4",
                  "--config.model.scan_method=fused"], tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert ("NVIDIA H100 80GB HBM3 79.65 GiB x 0.75 XLA_PYTHON_CLIENT_MEM_FRACTION, "
          "compiled deviceless") in result.stdout
  assert "| **4** | 2 |" in result.stdout  # 2 per device
  assert f"Note: {gpu_compile.ATTENTION_NOTE}" in result.stdout
  assert "Picked global batch size 4." in result.stdout
  with open(tmp_path / "run" / "probe.json") as f:
    assert json.load(f)["measurements"][0]["per_device"] == 2
