"""benchmarks/gpu_suite: the section runner and the scan bandwidth arithmetic.

Fast on purpose: made-up sections and a fake clock, two tiny child
processes. The smoke run of the whole suite (`python -m benchmarks.gpu_suite
--smoke --out DIR`) is CI's job, not this file's.
"""

import json
import os
import sys

import pytest

from benchmarks import common, gpu_suite
from benchmarks.gpu_suite_report import SectionError, Skip, table


class FakeClock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def _read(out_dir):
  with open(os.path.join(out_dir, "gpu_suite.json")) as f:
    return json.load(f)


def _section(name, run, budget_s=100.0, min_s=0.0):
  return gpu_suite.Section(name, run, budget_s, min_s)


def test_a_failing_section_is_recorded_and_the_next_one_runs(tmp_path):
  seen = []

  def boom(ctx):
    raise RuntimeError("the GPU caught fire")

  def after(ctx):
    # The files were written after the failing section, and are valid JSON.
    data = _read(tmp_path)
    seen.append(data["boom"]["status"])
    assert os.path.exists(tmp_path / "gpu_suite.md")
    return {"rows": [{"x": 1, "status": "ok"}]}

  suite = gpu_suite.Suite(str(tmp_path), budget_s=100, clock=FakeClock())
  results = suite.run([_section("boom", boom), _section("after", after)])
  assert seen == ["failed"]
  assert results["boom"]["status"] == "failed"
  assert "RuntimeError: the GPU caught fire" in results["boom"]["reason"]
  assert "Traceback" in results["boom"]["traceback"]
  assert results["after"]["status"] == "ok"
  data = _read(tmp_path)
  assert data["suite"]["finished"] and list(data)[1:] == ["boom", "after"]
  md = (tmp_path / "gpu_suite.md").read_text()
  assert "## boom: failed" in md and "the GPU caught fire" in md


def test_files_are_rewritten_after_every_section(tmp_path):
  snapshots = []

  def snapshot(ctx):
    snapshots.append(sorted(k for k in _read(tmp_path) if k != "suite"))
    return {"value": len(snapshots)}

  suite = gpu_suite.Suite(str(tmp_path), budget_s=100, clock=FakeClock())
  suite.run([_section(n, snapshot) for n in ("a", "b", "c")])
  assert snapshots == [[], ["a"], ["a", "b"]]
  assert _read(tmp_path)["c"] == {"value": 3, "status": "ok", "wall_s": 0.0}


def test_skips_and_failed_rows_carry_reasons(tmp_path):
  def skip(ctx):
    raise Skip("needs a GPU")

  def partial(ctx):
    raise SectionError("timed out after 5 s", {"rows": [{"a": 1}]})

  def rows(ctx):
    return {"rows": [{"status": "ok"}, {"status": "failed", "reason": "OOM"},
                     {"status": "skipped", "reason": "cuDNN needs a GPU"}]}

  suite = gpu_suite.Suite(str(tmp_path), budget_s=100, clock=FakeClock())
  results = suite.run([_section("skip", skip), _section("partial", partial),
                       _section("rows", rows)])
  assert results["skip"] == {"status": "skipped", "reason": "needs a GPU",
                             "wall_s": 0.0}
  assert results["partial"]["status"] == "failed"
  assert results["partial"]["rows"] == [{"a": 1}]  # what it had measured
  assert results["rows"]["status"] == "failed"
  assert results["rows"]["reason"].startswith("1 of 3 rows failed; first: OOM")
  for result in _read(tmp_path).values():
    if result.get("status", "ok") != "ok":
      assert result["reason"]


def test_budget_exhaustion_skips_later_sections(tmp_path):
  clock = FakeClock()
  deadlines = []

  def slow(ctx):
    deadlines.append(ctx.left())
    clock.now += 80.0  # the section takes 80 of the 100 s
    return {}

  ran = []
  suite = gpu_suite.Suite(str(tmp_path), budget_s=100, clock=clock)
  results = suite.run([
      _section("slow", slow, budget_s=90),
      _section("big", lambda ctx: ran.append("big"), min_s=30),
      _section("small", lambda ctx: ran.append(ctx.left()), budget_s=50, min_s=10)])
  assert deadlines == [90.0]           # its own budget, under the total
  assert results["big"]["status"] == "skipped"
  assert "20 s left" in results["big"]["reason"]
  assert "at least 30 s" in results["big"]["reason"]
  assert ran == [20.0]                 # the rest of the total, not its 50 s
  assert results["small"]["status"] == "ok"


def test_a_hanging_child_is_killed_and_keeps_its_figures(tmp_path):
  result = tmp_path / "part.json"
  script = (f"import json, time; json.dump({{'rows': [{{'a': 1}}]}}, "
            f"open({str(result)!r}, 'w')); print('measured', flush=True); "
            "time.sleep(60)")
  with pytest.raises(SectionError) as e:
    gpu_suite.run_job([sys.executable, "-c", script], str(result),
                      str(tmp_path / "log.txt"), timeout=3)
  assert str(e.value) == "timed out after 3 s (killed)"
  assert e.value.figures["rows"] == [{"a": 1}]           # what it had written
  assert "measured" in e.value.figures["log_tail"]       # and what it printed


def test_a_child_that_writes_nothing_fails_with_its_log(tmp_path):
  with pytest.raises(SectionError, match="exit code 3 without figures") as e:
    gpu_suite.run_job(
        [sys.executable, "-c", "import sys; print('oops'); sys.exit(3)"],
        str(tmp_path / "part.json"), str(tmp_path / "log.txt"), timeout=30)
  assert e.value.figures["log_tail"].endswith("oops")


def test_scan_io_bytes_by_hand():
  # batch 4 (2 directions x 2 modalities), L 4096, D 192, N 16, float32.
  tokens = 4 * 4096                           # 16,384
  inputs = 4 * (tokens * 192 * 2              # u, delta: 25,165,824
                + tokens * 16 * 2             # B, C: 2,097,152
                + 192 * 16 + 2 * 192)         # A, D, delta_bias: 13,824
  assert inputs == 27_276_800
  y = 4 * tokens * 192                        # 12,582,912
  assert common.scan_io_bytes(4, 4096, 192, 16) == inputs + y == 39_859_712
  # fwd + bwd: the forward's traffic, the backward reading every input and
  # dy, and writing one gradient per input.
  assert common.scan_io_bytes(4, 4096, 192, 16, backward=True) == (
      3 * inputs + 2 * y) == 106_996_224
  # The gate z is one more (tokens, D) input.
  assert (common.scan_io_bytes(4, 4096, 192, 16, gate=True) -
          common.scan_io_bytes(4, 4096, 192, 16)) == 4 * tokens * 192
  assert common.scan_io_bytes(1, 10, 2, 1, itemsize=2) == 2 * (
      10 * 2 * 2 + 10 * 2 + 2 + 4) + 2 * 10 * 2


def test_bandwidth_bound_by_hand():
  # An H200 at 4.8 TB/s moves the fwd+bwd bytes above in 22.29 us; a
  # 66.87 us step is then 3.0x the bound.
  bandwidth, entry = common.known_bandwidth("NVIDIA H200")
  assert (bandwidth, entry) == (4.8e12, "h200")
  nbytes = common.scan_io_bytes(4, 4096, 192, 16, backward=True)
  bound_s = nbytes / bandwidth
  assert bound_s == pytest.approx(22.2909e-6, rel=1e-4)
  assert 66.8727e-6 / bound_s == pytest.approx(3.0, rel=1e-4)


@pytest.mark.parametrize("kind, expected", [
    ("NVIDIA H200", 4.8e12), ("NVIDIA H200 NVL", 4.8e12),
    ("NVIDIA H100 80GB HBM3", 3.35e12), ("NVIDIA H100 PCIe", 2.0e12),
    ("NVIDIA A100-SXM4-80GB", 2.039e12), ("NVIDIA A100 80GB PCIe", 1.935e12),
    ("NVIDIA A100-SXM4-40GB", 1.555e12), ("NVIDIA L40S", 864e9),
    ("NVIDIA L4", 300e9), ("Tesla T4", 320e9),
    ("NVIDIA GH200 480GB", None),       # memory not told by the name: measure
    ("NVIDIA GeForce RTX 4090", None), ("cpu", None)])
def test_known_bandwidth(kind, expected):
  assert common.known_bandwidth(kind)[0] == expected


def test_markdown_table_puts_status_last():
  lines = table(
      [{"status": "ok", "L": 4096, "ms": 1.23456},
       {"L": 65536, "status": "skipped", "reason": "a | b"}])
  assert lines[0] == "| L | ms | status | reason |"
  assert lines[2] == "| 4,096 | 1.235 | ok |  |"
  assert lines[3] == "| 65,536 |  | skipped | a \\| b |"


def test_train_step_keeps_going_when_a_child_dies(tmp_path, monkeypatch):
  """The bf16 child times out after one row: its other rows say so, the next
  children run at the fallback batch, and the section reports the failure."""
  calls = []

  def job(self, name, *extra, timeout=None, env=None, tag=None):
    calls.append((tag, [e for e in extra if e.startswith("--batch=")], timeout))
    if tag == "train_step_0":
      raise SectionError("timed out after 90 s (killed)",
                         {"rows": [], "log_tail": "compiling..."})
    rows = extra[0].split("=")[1].split(",")
    return {"status": "ok", "rows": [{"row": r, "status": "ok"} for r in rows]}

  monkeypatch.setattr(gpu_suite.Context, "job", job)
  args = gpu_suite.parse_args(["--out", str(tmp_path)])
  suite = gpu_suite.Suite(str(tmp_path), budget_s=450, clock=FakeClock())
  section = _section("train_step", gpu_suite.sections.train_step, budget_s=200)
  results = suite.run([section], args=args, env={})
  result = results["train_step"]
  assert [c[0] for c in calls] == ["train_step_0", "train_step_1", "train_step_2"]
  assert calls[0][2] == pytest.approx(90.0)          # 0.45 of 200 s
  assert calls[1][1] == ["--batch=8"]                # no pick: the fallback
  statuses = {r["row"]: r["status"] for r in result["rows"]}
  assert statuses == {"base_bf16_remat": "failed", "tiny_bf16_remat": "ok",
                      "base_depth1_bf16_remat": "ok",
                      "base_bf16_remat_fused": "ok", "base_f32_remat": "ok"}
  assert result["rows"][0]["reason"] == "not measured: timed out after 90 s (killed)"
  assert result["status"] == "failed"
  assert result["job_errors"][0]["log_tail"] == "compiling..."


def test_deviceless_probe_compiles_the_pick_for_as_many_gpus(tmp_path, monkeypatch):
  """On 8 H100s the probe's global pick (8 per device) is compiled deviceless
  for 8 H100s, not at 64 per device on one."""
  commands = []

  def run_main(ctx, cmd, log_name, **options):
    commands.append(cmd)
    workdir = cmd[cmd.index("--workdir") + 1]
    os.makedirs(workdir, exist_ok=True)
    row = {"batch_size": 64, "per_device": 8, "argument": 0, "output": 0,
           "temp": 2**30, "alias": 0, "fits": True, "step": "ok", "compile_s": 1.0}
    with open(os.path.join(workdir, "probe.json"), "w") as f:
      json.dump({"batch_size": 64, "measurements": [row], "budget": {
          "limit": 2**36, "fraction": 0.9, "source": "test"}}, f)
    log = os.path.join(str(tmp_path), f"{log_name}.log")
    open(log, "w").close()
    return {"status": "ok", "wall_s": 1.0, "log": log}

  monkeypatch.setattr(gpu_suite.sections, "run_main", run_main)
  suite = gpu_suite.Suite(str(tmp_path), budget_s=450, clock=FakeClock())
  suite.results["environment"] = {"device_kind": "NVIDIA H100 80GB HBM3",
                                  "device_count": 8}
  ctx = gpu_suite.Context(suite, 450.0,
                          args=gpu_suite.parse_args(["--out", str(tmp_path)]), env={})
  figures = gpu_suite.sections.probe(ctx)
  assert figures["deviceless"]["status"] == "ok"
  deviceless = commands[1]
  assert "--config.probe.target=h100" in deviceless
  assert "--config.probe.target_devices=8" in deviceless
  assert "--config.probe.max_batch_size=64" in deviceless


def _kernel_rows(backward_registers):
  return [{"d_state": 16, "scan_forward_registers": 86, "scan_forward_spill_bytes": 0,
           "scan_forward_smem_bytes": 44032, "status": "ok",
           "scan_backward_registers": backward_registers}]


@pytest.mark.parametrize("on_device, agree", [(165, True), (170, False)])
def test_kernels_section_puts_the_device_beside_the_deviceless_compile(
    tmp_path, monkeypatch, on_device, agree):
  """On an H200 the deviceless child compiles for an H200 on the CPU
  backend; the rows of both are kept and compared figure by figure."""
  calls = []

  def job(self, name, *extra, timeout=None, env=None, tag=None):
    calls.append((name, extra, env, tag))
    rows = _kernel_rows(165 if extra else on_device)
    return {"status": "ok", "compiled": tag, "rows": rows}

  monkeypatch.setattr(gpu_suite.Context, "job", job)
  suite = gpu_suite.Suite(str(tmp_path), budget_s=450, clock=FakeClock())
  suite.results["environment"] = {"device_kind": "NVIDIA H200"}
  ctx = gpu_suite.Context(suite, 450.0,
                          args=gpu_suite.parse_args(["--out", str(tmp_path)]), env={})
  figures = gpu_suite.gpu_suite_kernels.kernels(ctx)
  assert calls == [("kernels", (), None, "kernels_device"),
                   ("kernels", ("--target=h200",), {"JAX_PLATFORMS": "cpu"},
                    "kernels_deviceless")]
  assert [r["run"] for r in figures["rows"]] == ["device", "deviceless"]
  assert figures["agree"] is agree


def test_kernels_section_fails_when_a_compile_fails(tmp_path, monkeypatch):
  def job(self, name, *extra, timeout=None, env=None, tag=None):
    if extra:
      raise SectionError("timed out after 30 s (killed)", {"rows": []})
    return {"status": "skipped", "reason": "needs a GPU", "rows": []}

  monkeypatch.setattr(gpu_suite.Context, "job", job)
  suite = gpu_suite.Suite(str(tmp_path), budget_s=450, clock=FakeClock())
  args = gpu_suite.parse_args(["--out", str(tmp_path), "--smoke"])
  section = _section("kernels", gpu_suite.gpu_suite_kernels.kernels)
  result = suite.run([section], args=args, env={})["kernels"]
  assert result["status"] == "failed"
  assert result["reason"] == "deviceless: timed out after 30 s (killed)"
  assert result["device"] == "skipped: needs a GPU" and result["agree"] is None
