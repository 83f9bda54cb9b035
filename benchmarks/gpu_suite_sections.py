"""The sections of benchmarks/gpu_suite.py: each runs child processes.

environment, attention, scan, train_step and original run jobs of
benchmarks/gpu_suite_jobs.py (ctx.job); probe and end_to_end run
`python main.py` itself, each run a subprocess in its own process group with
a timeout (output in DIR/logs/, workdirs under DIR/work/). A section returns
its figures or raises Skip / SectionError. Standard library only, like the
suite's parent process.
"""

import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from benchmarks.gpu_suite_kernels import target_gpu
from benchmarks.gpu_suite_report import SectionError, Skip

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# --smoke: configs/default.py (tiny, float32) at 32 px with these fields, in
# every section that trains (train_step's rows too), so the whole smoke run
# compiles one train step and the rest come from the compilation cache.
SMOKE_CONFIG = {"data.image_size": 32, "data.synthetic.scene_size": 32,
                "data.synthetic.num_train": 16, "data.synthetic.num_val": 2,
                "data.synthetic.num_test": 2, "batch_size": 2,
                "eval_batch_size": 2, "num_train_steps": 8}
_SMOKE_ARGS = tuple(f"--config.{k}={v}" for k, v in SMOKE_CONFIG.items())
# The GPU run's probe: the train_step section's bf16 row.
_PROBE_ARGS = ("--config.model.dtype=bfloat16", "--config.model.remat=True")


def kill_group(proc: subprocess.Popen):
  """SIGKILL a child started with start_new_session=True, and its children."""
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except ProcessLookupError:
    pass
  proc.wait()


def main_cmd(config: str, workdir: str, *overrides: str) -> list[str]:
  return [sys.executable, os.path.join(_REPO, "main.py"), "--config",
          os.path.join(_REPO, "configs", config), "--workdir", workdir,
          *overrides]


def run_main(ctx, cmd, log_name: str, *, min_s: float = 10.0,
             until=None, env: dict | None = None) -> dict:
  """Runs a main.py command within the section's time; returns its record.

  `until(proc)`: polled every 50 ms while the process runs; when it returns
  true the process group is killed with SIGKILL (the record says so).
  `env`: variables to add to the child's environment.
  """
  timeout = ctx.left()
  if timeout < min_s:
    raise Skip(f"{timeout:.0f} s left in the section's budget, under {min_s:.0f} s")
  log_path = ctx.path("logs", f"{log_name}.log")
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  start, record = time.monotonic(), {}
  with open(log_path, "w") as log:
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=_REPO,
                            env=dict(ctx.env, **(env or {})), start_new_session=True)
    try:
      while proc.poll() is None:
        if time.monotonic() - start > timeout:
          kill_group(proc)
          record.update(status="failed", reason=f"timed out after {timeout:.0f} s")
          break
        if until is not None and until(proc):
          kill_group(proc)
          record["killed"] = True
          break
        time.sleep(0.05)
    except BaseException:  # interrupted: take the child along
      kill_group(proc)
      raise
  record.update(returncode=proc.returncode,
                wall_s=round(time.monotonic() - start, 1), log=log_path)
  if "status" not in record:
    ok = proc.returncode == 0 or record.get("killed")
    record["status"] = "ok" if ok else "failed"
    if not ok:
      record["reason"] = f"exit code {proc.returncode}: {_tail(log_path)}"
  return record


def _tail(path: str, chars: int = 600) -> str:
  with open(path, errors="replace") as f:
    return f.read()[-chars:].strip()


def _guarded(rows: list, name: str, fn):
  """Appends fn()'s record to rows; a Skip or failure becomes the record."""
  try:
    record = fn()
  except Skip as e:
    record = {"status": "skipped", "reason": str(e)}
  except Exception as e:  # pylint: disable=broad-except
    record = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
  rows.append({"run": name, **record})


# ---- sections run as gpu_suite_jobs children ----


def environment(ctx):
  return dict(ctx.job("environment"), suite_sets=ctx.suite.meta.get("settings"))


def attention(ctx):
  return ctx.job("attention")


def scan(ctx):
  return ctx.job("scan")


def train_step(ctx):
  """Three children on a GPU (each row's peak memory is its own process's):
  the bf16 row with the probe, the rows at its batch, the float32 row. Each
  gets its share of the time left (weights below)."""
  groups = [(0.45, ["base_bf16_remat"]),
            (0.2, ["tiny_bf16_remat", "base_depth1_bf16_remat",
                   "base_bf16_remat_fused"]),
            (0.35, ["base_f32_remat"])]
  if ctx.args.smoke:  # one process: CPUs report no peak memory to keep apart
    groups = [(1.0, sum((g for _, g in groups), []))]
  rows, extra = [], {}
  for i, (weight, group) in enumerate(groups):
    share = ctx.left() * weight / sum(w for w, _ in groups[i:])
    try:
      batch, source = _bf16_pick(rows, ctx.args)
      figures = ctx.job("train_step", f"--rows={','.join(group)}",
                        f"--batch={batch}", f"--batch_from={source}",
                        f"--probe_max_batch={ctx.args.probe_max_batch}",
                        timeout=share, tag=f"train_step_{i}")
    except (SectionError, Skip) as e:
      figures = dict(getattr(e, "figures", {}) or {}, reason=str(e),
                     status="skipped" if isinstance(e, Skip) else "failed")
    done = {r.get("row") for r in figures.get("rows", [])}
    rows += figures.pop("rows", []) + [
        {"row": name, "status": "skipped" if figures.get("status") == "skipped"
         else "failed", "reason": f"not measured: {figures.get('reason')}"}
        for name in group if name not in done]
    if figures.get("status", "ok") != "ok":
      extra.setdefault("job_errors", []).append(
          {k: figures[k] for k in ("reason", "log", "log_tail") if k in figures})
  return dict(extra, rows=rows)


def _bf16_pick(rows, args):
  """The bf16 row's probed batch (and where it came from), or a fallback."""
  for row in rows:
    if row.get("row") == "base_bf16_remat" and row.get("status") == "ok":
      return row["batch"], "the base bf16 probe's pick"
  return (2 if args.smoke else 8), "fallback: the bf16 row has no pick"


def original(ctx):
  """The original's train and eval step beside our bf16 row (same batch)."""
  if not ctx.args.original_path:
    raise Skip("no --original_path (a checkout of QJHWC/MambaIR-GPPNN) given")
  if importlib.util.find_spec("torch") is None:
    raise Skip("PyTorch is not installed (pip install torch; benchmark-only)")
  ours = next((r for r in ctx.result("train_step").get("rows", [])
               if r.get("row") == "base_bf16_remat" and r.get("status") == "ok"),
              None)
  batch = ours["batch"] if ours else (2 if ctx.args.smoke else 8)
  figures = ctx.job("original", f"--batch={batch}",
                    f"--original_path={ctx.args.original_path}",
                    env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
  if figures.get("status") != "ok" or not figures.get("rows"):
    return figures
  theirs = figures["rows"][0]
  if ours:
    figures["rows"].append({
        "model": "ours (JAX), base bf16 + remat", "batch": ours["batch"],
        "params_m": ours.get("params_m"), "precision": "bf16 compute",
        "train_step_ms": ours.get("step_ms"),
        "train_images_per_s": ours.get("images_per_s"),
        "eval_ms": ours.get("eval_ms"),
        "eval_images_per_s": ours.get("eval_images_per_s")})
    if ours.get("images_per_s") and theirs.get("train_images_per_s"):
      figures["ours_over_original_train"] = round(
          ours["images_per_s"] / theirs["train_images_per_s"], 2)
    if ours.get("eval_images_per_s") and theirs.get("eval_images_per_s"):
      figures["ours_over_original_eval"] = round(
          ours["eval_images_per_s"] / theirs["eval_images_per_s"], 2)
    figures["goal"] = "ours >= 5x the original's train images/s"
    ratio = figures.get("ours_over_original_train")
    figures["goal_met"] = None if ratio is None else ratio >= 5
  else:
    figures["note"] = "no ok base_bf16_remat row in train_step: no ratio"
  return figures


# ---- probe ----


def probe(ctx):
  """`main.py --mode=probe` with its confirming step, on the config that
  train_step's bf16 row compiles (configs/base_256.py in bf16 + remat; in
  --smoke the smoke config), so its compiles come from the shared cache."""
  smoke = ctx.args.smoke
  workdir = ctx.path("work", "probe")
  shutil.rmtree(workdir, ignore_errors=True)
  overrides = [*(_SMOKE_ARGS if smoke else _PROBE_ARGS),
               f"--config.probe.max_batch_size={ctx.args.probe_max_batch}",
               "--mode=probe"]
  config = "default.py" if smoke else "base_256.py"
  record = run_main(ctx, main_cmd(config, workdir, *overrides), "probe")
  figures = {"config": config, "overrides": " ".join(overrides),
             "wall_s_main": record["wall_s"]}
  path = os.path.join(workdir, "probe.json")
  if record["status"] != "ok" or not os.path.exists(path):
    raise SectionError(record.get("reason") or "main.py wrote no probe.json",
                       figures)
  with open(path) as f:
    result = json.load(f)
  with open(record["log"], errors="replace") as f:  # the table it printed
    figures["printed"] = "\n".join(
        line.rstrip() for line in f if line.startswith(
            ("|", "Memory budget", "Picked")))
  budget = result["budget"]
  figures.update(
      picked_batch=result["batch_size"],
      budget_gib=round(budget["limit"] * budget["fraction"] / 2**30, 3),
      budget_source=budget["source"])
  figures["rows"] = [{
      "batch": m["batch_size"], "per_device": m["per_device"],
      "total_gib": round((m["argument"] + m["output"] + m["temp"] - m["alias"])
                         / 2**30, 3),
      "temp_gib": round(m["temp"] / 2**30, 3), "fits": m["fits"],
      "confirm_step": m["step"] or "-", "compile_s": round(m["compile_s"], 1),
      "picked": m["batch_size"] == result["batch_size"]}
      for m in result["measurements"]]
  picked = [r for r in figures["rows"] if r["picked"]]
  figures["confirmed"] = bool(picked) and picked[0]["confirm_step"] == "ok"
  target = target_gpu(ctx)
  if picked and target and not smoke:
    figures["deviceless"] = _deviceless_probe(
        ctx, config, [o for o in overrides if "max_batch_size" not in o], target,
        picked[0]["batch"], ctx.result("environment").get("device_count") or 1)
  if not figures["confirmed"]:
    raise SectionError("the probe's pick was not confirmed by a real step",
                       figures)
  return figures


def _deviceless_probe(ctx, config, overrides, target, batch, devices) -> dict:
  """The device's pick compiled deviceless for as many of its GPU (probe.target)."""
  workdir = ctx.path("work", "probe_deviceless")
  shutil.rmtree(workdir, ignore_errors=True)
  cmd = main_cmd(config, workdir, *overrides, f"--config.probe.target={target}",
                 f"--config.probe.target_devices={devices}",
                 f"--config.probe.max_batch_size={batch}")
  try:
    record = run_main(ctx, cmd, "probe_deviceless", env={"JAX_PLATFORMS": "cpu"})
  except Skip as e:
    return {"status": "skipped", "reason": str(e)}
  path = os.path.join(workdir, "probe.json")
  if record["status"] != "ok" or not os.path.exists(path):
    return {"status": "failed", "reason": record.get("reason", "no probe.json")}
  with open(path) as f:
    m = json.load(f)["measurements"][0]
  return {"status": "ok", "target": target, "batch": m["batch_size"],
          "total_gib": round((m["argument"] + m["output"] + m["temp"] - m["alias"])
                             / 2**30, 3), "temp_gib": round(m["temp"] / 2**30, 3),
          "compile_s": round(m["compile_s"], 1)}


# ---- end to end ----


def end_to_end(ctx):
  """Train N steps, evaluate, then a second run of the same command in a
  fresh workdir is SIGKILLed after its first checkpoint and resumed; the
  resumed run must finish, and its PSNR is compared with the uninterrupted
  run's. --smoke leaves out the uninterrupted run (each main.py process
  costs a CPU half a minute): kill, resume, evaluate the resumed workdir."""
  smoke = ctx.args.smoke
  steps, every = (SMOKE_CONFIG["num_train_steps"], 4) if smoke else (50, 10)
  overrides = [*(_SMOKE_ARGS if smoke else [f"--config.num_train_steps={steps}"]),
               f"--config.checkpoint_every={every}",
               f"--config.log_every={every}", f"--config.eval_every={steps}"]
  first, second = ctx.path("work", "e2e_train"), ctx.path("work", "e2e_resume")
  for workdir in (first, second):
    shutil.rmtree(workdir, ignore_errors=True)
  cmd = lambda workdir, *extra: main_cmd("default.py", workdir, *overrides,
                                         *extra)
  rows = []

  def train():
    record = run_main(ctx, cmd(first), "e2e_train", min_s=30)
    return dict(record, **_run_figures(first))

  def evaluate(workdir):
    record = run_main(ctx, cmd(workdir, "--mode=evaluate"), "e2e_evaluate")
    reports = glob.glob(os.path.join(workdir, "eval", "**", "report.json"),
                        recursive=True)
    newest = max(reports, key=os.path.getmtime) if reports else None
    return dict(record, psnr=_psnr(newest), report=newest)

  def kill():
    killed = {}

    def after_checkpoint(_):
      done = _checkpoint_steps(second)
      if done and min(done) < steps:
        killed["at_checkpoint"] = min(done)
        return True
      return False

    record = run_main(ctx, cmd(second), "e2e_kill", min_s=20,
                      until=after_checkpoint)
    record.update(killed)
    if record["status"] == "ok" and not record.get("killed"):
      record.update(status="failed", reason="the run ended before a "
                    "checkpoint could be killed")
    return record

  def resume():
    record = run_main(ctx, cmd(second), "e2e_resume", min_s=20)
    with open(record["log"], errors="replace") as f:
      match = re.search(r"Resumed from step (\d+)", f.read())
    record.update(_run_figures(second),
                  resumed_from=int(match.group(1)) if match else None)
    resumed = record["resumed_from"]
    if record["status"] != "ok":
      pass
    elif record.get("final_step") != steps:
      record.update(status="failed", reason=f"the resumed run stopped at "
                    f"step {record.get('final_step')}, not {steps}")
    elif resumed is None or resumed >= steps:
      record.update(status="failed", reason="nothing was resumed (resumed "
                    f"from step {resumed}: killed too late or no checkpoint)")
    return record

  if smoke:
    plan = [("kill", kill), ("resume", resume),
            ("evaluate", lambda: evaluate(second))]
  else:
    plan = [("train", train), ("evaluate", lambda: evaluate(first)),
            ("kill", kill), ("resume", resume)]
  for name, fn in plan:
    _guarded(rows, name, fn)
  figures = {"config": "configs/default.py", "overrides": " ".join(overrides),
             "rows": rows}
  psnr = {row["run"]: row.get("psnr") for row in rows}
  reference = "resume" if smoke else "train"
  for name in ("evaluate", "resume"):
    if name != reference and None not in (psnr.get(name), psnr.get(reference)):
      figures[f"{name}_minus_{reference}_psnr"] = psnr[name] - psnr[reference]
  return figures


def _checkpoint_steps(workdir: str) -> list[int]:
  """Steps of the finished checkpoints (Orbax renames a step's folder to
  its number once it is complete)."""
  try:
    names = os.listdir(os.path.join(workdir, "checkpoints"))
  except OSError:
    return []
  return sorted(int(n) for n in names if n.isdigit())


def _run_figures(workdir: str) -> dict:
  """Final step, images/s and final PSNR of a training workdir."""
  figures = {"final_step": None, "images_per_s": None}
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      records = [json.loads(line) for line in f if line.strip()]
  except (OSError, ValueError):
    records = []
  train = [r for r in records if r.get("split") == "train"]
  if train:
    figures.update(final_step=train[-1]["step"],
                   images_per_s=train[-1].get("images_per_sec"),
                   loss=train[-1].get("loss"))
  figures["psnr"] = _psnr(os.path.join(workdir, "eval", "report.json"))
  figures["checkpoints"] = " ".join(map(str, _checkpoint_steps(workdir)))
  return figures


def _psnr(report_path) -> float | None:
  """The model's mean PSNR in an evaluation report, if there is one."""
  try:
    with open(report_path) as f:
      return json.load(f)["mean"]["model"]["psnr"]
  except (OSError, TypeError, ValueError, KeyError):
    return None
