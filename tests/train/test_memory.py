"""The memory probe: candidates, a pick that fits the budget, its table."""

import json
import types

import jax
import pytest
import train_tiny

from pansharp_jax.train import builder, memory, parallel


def test_candidates_halve_and_stay_whole_per_device():
  assert memory.candidates(64, 8) == [64, 32, 16, 8]
  assert memory.candidates(48, 8) == [48, 24, 8]
  assert memory.candidates(4, 8) == [8]
  assert memory.candidates(5, 1) == [5, 2, 1]


@pytest.fixture(scope="module")
def probe_setup():
  config = train_tiny.config()
  config.probe.max_batch_size = 32
  mesh = parallel.make_mesh()
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  step = builder.jit_train_step(model, optimizer, config, mesh)
  state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                         jax.random.PRNGKey(0))
  # Per-device needs at each candidate (the probe reuses these compilations).
  need = {b: memory.measure(step, state, b, config, mesh, 0)[1].total
          for b in (32, 16, 8)}
  return config, mesh, model, optimizer, step, need


def test_probe_picks_the_largest_batch_within_the_budget(probe_setup, tmp_path):
  config, mesh, model, optimizer, step, need = probe_setup
  assert need[8] < need[16] < need[32]
  # A CPU budget between the needs of batch 16 and batch 32.
  config.probe.memory_fraction = 0.5
  config.probe.cpu_budget_gb = (need[16] + need[32]) / 2 / 0.5 / memory.GIB
  result = memory.probe(config, mesh, model, optimizer, step)
  assert result.batch_size == 16
  assert [m.batch_size for m in result.measurements] == [32, 16]
  assert [m.fits for m in result.measurements] == [False, True]
  assert result.measurements[-1].step == "ok"   # confirmed by one real step
  assert result.budget.source == "probe.cpu_budget_gb"
  table = memory.format_table(result)
  assert "| **16** | 2 |" in table and "Picked global batch size 16." in table


def test_probe_mode_prints_the_table_and_writes_json(tmp_path, capsys):
  config = train_tiny.config()
  config.probe.max_batch_size = 8
  result = memory.run_probe(config, str(tmp_path))
  assert result.batch_size == 8
  assert "Picked global batch size 8." in capsys.readouterr().out
  with open(tmp_path / "probe.json") as f:
    assert json.load(f)["measurements"][0]["batch_size"] == 8


def test_probe_fails_clearly_when_nothing_fits(probe_setup):
  config, mesh, model, optimizer, step, need = probe_setup
  config.probe.memory_fraction = 1.0
  config.probe.cpu_budget_gb = need[8] / 2 / memory.GIB
  with pytest.raises(memory.ProbeError, match="no batch size fits") as error:
    memory.probe(config, mesh, model, optimizer, step)
  assert len(error.value.result.measurements) == 3


def test_cpu_budget_comes_from_the_config():
  """CPU devices report no memory: the budget is probe.cpu_budget_gb."""
  config = train_tiny.config()
  config.probe.cpu_budget_gb = 2.0
  config.probe.memory_fraction = 0.25
  assert memory.device_memory() == {}
  plan = memory.budget(config)
  assert (plan.limit, plan.source) == (2 * memory.GIB, "probe.cpu_budget_gb")
  assert plan.bytes == memory.GIB // 2


def _fake_devices(*stats):
  return [types.SimpleNamespace(memory_stats=lambda s=s: s,
                                device_kind="Fake GPU") for s in stats]


def test_reported_memory_sets_the_budget_and_the_readings(monkeypatch):
  """Devices that report memory: the tightest limit is the budget (not the
  config's CPU figure); the readings are the fullest device's, in GiB."""
  gib = memory.GIB
  monkeypatch.setattr(jax, "local_devices", lambda: _fake_devices(
      {"bytes_in_use": 3 * gib, "peak_bytes_in_use": 5 * gib,
       "bytes_limit": 80 * gib},
      {"bytes_in_use": 4 * gib, "peak_bytes_in_use": 4 * gib,
       "bytes_limit": 40 * gib}))
  config = train_tiny.config()
  config.probe.memory_fraction = 0.5
  plan = memory.budget(config)
  assert (plan.limit, plan.bytes, plan.source) == (
      40 * gib, 20 * gib, "Fake GPU bytes_limit")
  assert memory.device_memory() == {"mem_in_use_gb": 4.0, "mem_peak_gb": 5.0,
                                    "mem_limit_gb": 40.0}
