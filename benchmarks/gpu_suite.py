"""Every GPU figure in one command, safe to run in a short GPU slot.

  python -m benchmarks.gpu_suite --out DIR                 # one GPU, <= 8 min
  python -m benchmarks.gpu_suite --out DIR --original_path PATH   # + the original
  python -m benchmarks.gpu_suite --out DIR --smoke         # toy sizes on a CPU
  python -m benchmarks.gpu_suite --out DIR --sections scan,attention

It writes DIR/gpu_suite.json, keyed by section (each with `status` ok /
failed / skipped, a `reason` when not ok, `wall_s` and the section's figures,
mostly as `rows`; the "suite" entry says how the run went), and
DIR/gpu_suite.md (an environment header, then one table per section). Both
are rewritten after every section, so a run killed half-way still leaves
what it measured. Children's logs are in DIR/logs, their raw figures in
DIR/parts. Exit status 1 when a section failed, else 0.

Sections, in the order they run:
- environment: devices, GPU name, memory limit (memory_stats), versions,
  XLA flags and the settings the suite adds.
- attention: cuDNN flash / chunked / XLA attention (pansharp_jax.ops) at
  4,096, 16,384 and 65,536 tokens (64, 128, 256 px) in bf16 and float32: max
  abs difference against a float32 reference (full matmul precision, on 512
  of the query rows) and forward / forward+backward times. Anything whose
  XLA temporaries exceed half the device memory is compiled, not run.
- scan: the S6 selective scan, fused (the Pallas kernel, GPU only) /
  associative / chunked (64, 128, 256, 512) / sequential at L = 4,096 and 65,536, D = 192, N = 16, batch 4 (2 directions
  x 2 modalities x 1 image, as models/assm.py folds them): agreement with the
  sequential form, times, XLA temporaries, and bytes/s of the op's own reads
  and writes against the memory bandwidth (a data-sheet table by GPU name,
  else a measured device copy): fwd+bwd time / bandwidth bound, goal <= 3x.
  The fused row also gives its time over its own HBM traffic's bound
  (ops/scan_kernel.hbm_bytes) and over its exp-throughput bound; every
  row's y and gradients are compared with the sequential form's on the
  device (the chunked rows check lax.associative_scan's gradients there).
  Where jax-linear-attention installs, its Mamba-1 Mosaic GPU kernel runs
  beside the fused one (bf16, channels rounded up to a multiple of 128).
- train_step: base at 256 px (configs/base_256.py), bf16 + remat and float32
  + remat, each at the batch the memory probe picks (train/memory.py: the
  largest halving batch from --probe_max_batch that fits): images/s, peak
  memory (memory_stats), compile time; then tiny and base with
  model.depth=1 (the original's layout) and base with the fused scan
  (model.scan_method=fused) at the bf16 pick.
- original: the original PyTorch model's train and eval step (needs torch
  with CUDA and a checkout, --original_path) at the bf16 row's size and
  batch, fp16 autocast as it trains, and ours / original (goal >= 5x).
- probe: `main.py --mode=probe` with its confirming step, on the bf16 row's
  config; on an H100, H200 or A100 also its pick compiled deviceless for that
  GPU on the CPU backend (`--config.probe.target`), beside the device's figure.
- end_to_end: configs/default.py for 50 steps, --mode=evaluate, then the
  same run in a fresh workdir SIGKILLed after its first checkpoint and
  resumed: it must finish, and its PSNR is compared with the uninterrupted
  run's.
- kernels: the fused scan's forward and backward kernels (state sizes 16
  and 32, base's and large's) compiled on the device, and deviceless for
  its GPU on the CPU backend: ptxas' registers and spills and Mosaic GPU's
  shared memory side by side, and whether they agree
  (benchmarks/gpu_suite_kernels.py).

Every measurement runs in a child process (benchmarks/gpu_suite_jobs.py or
main.py) with a timeout, so a section that fails, hangs or crashes is
recorded and the next one runs; this process never touches the GPU, so each
child has the whole device. Each section has a time budget and the suite a
total (--budget_s, 450 s; the section budgets scale with it): a section that
would start with less than its minimum left is skipped, with the reason.
The children share a compilation cache in DIR/jax_cache (emptied at start):
the probe section reuses the train step the bf16 row compiled.

--smoke: every section at toy sizes on a CPU in a few minutes (CI runs it):
the tiny float32 model at 32 px (configs/default.py with
gpu_suite_sections.SMOKE_CONFIG) in train_step, probe and end_to_end, so one
train step is compiled (and end_to_end runs only the killed run, its
resumption and evaluate); 256 / 1,024 tokens; L = 512 with D = 32, N = 4;
the kernels at state size 16 deviceless for an H100 (where the CUDA plugin
and ptxas are installed); XLA's CPU code generation at optimisation level 0.
GPU-only rows (cuDNN, the bandwidth bound, the kernels on the device) and,
without torch and a checkout, the original say skipped and why.
"""

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback

from benchmarks import gpu_suite_kernels, gpu_suite_sections as sections
from benchmarks.gpu_suite_report import Skip, SectionError, write_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA flags the suite sets in --smoke: CPU code generation without LLVM's
# expensive passes compiles the tiny train step about 3x faster.
SMOKE_XLA_FLAGS = ("--xla_backend_optimization_level=0",
                   "--xla_llvm_disable_expensive_passes=true")


@dataclasses.dataclass(frozen=True)
class Section:
  name: str
  run: object              # (Context) -> dict of figures
  budget_s: float          # the most this section may take
  min_s: float             # skipped when less than this is left


class Suite:
  """Runs sections in order, records each, rewrites the files after each."""

  def __init__(self, out_dir: str, budget_s: float, meta: dict | None = None,
               clock=time.monotonic):
    self.out_dir, self.budget_s, self.clock = out_dir, budget_s, clock
    self.start = clock()
    self.results: dict[str, dict] = {}
    self.meta = dict(meta or {}, budget_s=budget_s, finished=False)
    os.makedirs(out_dir, exist_ok=True)

  def left(self) -> float:
    return self.budget_s - (self.clock() - self.start)

  def run(self, sections, **context):
    for section in sections:
      self.run_section(section, **context)
    self.meta.update(finished=True, running=None)
    self.write()
    return self.results

  def run_section(self, section: Section, **context):
    left = self.left()
    if left < section.min_s:
      self.results[section.name] = {
          "status": "skipped", "wall_s": 0.0,
          "reason": f"the suite's wall budget has {max(left, 0):.0f} s left "
                    f"and {section.name} needs at least {section.min_s:.0f} s"}
      self.write()
      return
    self.meta["running"] = section.name
    self.write()
    start = self.clock()
    ctx = Context(self, start + min(section.budget_s, left), **context)
    try:
      result = _with_status(section.run(ctx) or {})
    except Skip as e:
      result = {"status": "skipped", "reason": str(e)}
    except SectionError as e:
      result = dict(e.figures, status="failed", reason=str(e))
    except Exception as e:  # pylint: disable=broad-except
      result = {"status": "failed", "reason": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-3000:]}
    result["wall_s"] = round(self.clock() - start, 1)
    self.results[section.name] = result
    self.meta["running"] = None
    self.write()

  def write(self):
    self.meta["wall_s"] = round(self.clock() - self.start, 1)
    write_files(self.out_dir, self.meta, self.results)


def _with_status(figures: dict) -> dict:
  """A section's figures with its status: failed when any row failed."""
  figures = dict(figures)
  failed = [r for r in figures.get("rows", []) if r.get("status") == "failed"]
  if failed and figures.get("status", "ok") == "ok":
    figures["status"] = "failed"
    figures["reason"] = (f"{len(failed)} of {len(figures['rows'])} rows "
                         f"failed; first: {failed[0].get('reason', '?')}")
  figures.setdefault("status", "ok")
  if figures["status"] != "ok":
    figures.setdefault("reason", "no reason given")
  return figures


class Context:
  """What a section may use: its deadline, the options, earlier results."""

  def __init__(self, suite: Suite, deadline: float, *, args=None, env=None):
    self.suite, self.deadline, self.args, self.env = suite, deadline, args, env

  def left(self) -> float:
    return self.deadline - self.suite.clock()

  def result(self, section: str) -> dict:
    return self.suite.results.get(section, {})

  def path(self, *parts) -> str:
    return os.path.join(self.suite.out_dir, *parts)

  def job(self, name: str, *extra: str, timeout: float | None = None,
          env: dict | None = None, tag: str | None = None) -> dict:
    """Runs `python -m benchmarks.gpu_suite_jobs NAME` and returns its figures
    (`env`: variables to add to the child's environment; `tag`: the name of
    its files in DIR/parts and DIR/logs)."""
    timeout = min(self.left() if timeout is None else timeout, self.left())
    if timeout < 5:
      raise Skip(f"{name}: no time left in the section's budget")
    tag = tag or name
    result = self.path("parts", f"{tag}.json")
    grace = min(15.0, 0.15 * timeout)
    cmd = [sys.executable, "-m", "benchmarks.gpu_suite_jobs", name,
           "--result", result, "--deadline", str(time.time() + timeout - grace),
           *(["--smoke"] if self.args.smoke else []), *extra]
    return run_job(cmd, result, self.path("logs", f"{tag}.log"), timeout,
                   dict(self.env, **(env or {})))


def run_job(cmd, result_path: str, log_path: str, timeout: float, env=None) -> dict:
  """Runs a child that writes its figures (JSON) to `result_path`.

  The child runs in its own process group with stdout and stderr in
  `log_path`; at `timeout` seconds the group is killed. Returns the child's
  figures; raises SectionError (with whatever the child had written) when
  it timed out, crashed or wrote nothing.
  """
  for path in (result_path, log_path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  if os.path.exists(result_path):
    os.remove(result_path)
  with open(log_path, "w") as log:
    log.write("$ " + shlex.join(cmd) + "\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, env=env, start_new_session=True)
    try:
      returncode, timed_out = proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
      sections.kill_group(proc)
      returncode, timed_out = proc.returncode, True
    except BaseException:  # interrupted: take the child (and the GPU) along
      sections.kill_group(proc)
      raise
  figures = _read_json(result_path)
  log = {"log": log_path, "log_tail": tail(log_path)}
  if timed_out:
    raise SectionError(f"timed out after {timeout:.0f} s (killed)",
                       dict(figures, **log))
  if not figures:
    raise SectionError(f"exit code {returncode} without figures", log)
  if returncode and figures.get("status", "ok") == "ok":
    figures.update(status="failed", reason=f"exit code {returncode}", **log)
  return figures


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def tail(path: str, chars: int = 600) -> str:
  try:
    with open(path, errors="replace") as f:
      return f.read()[-chars:].strip()
  except OSError:
    return ""


SECTIONS = {  # name: (run, budget s on a GPU, in --smoke, minimum s)
    "environment": (sections.environment, 25, 20, 10),
    "attention": (sections.attention, 50, 30, 15),
    "scan": (sections.scan, 60, 30, 15),
    "train_step": (sections.train_step, 200, 100, 40),
    "original": (sections.original, 45, 30, 10),
    "probe": (sections.probe, 35, 45, 15),
    "end_to_end": (sections.end_to_end, 90, 130, 40),
    "kernels": (gpu_suite_kernels.kernels, 60, 60, 20),
}
DEFAULT_BUDGET_S = {False: 450.0, True: 280.0}  # GPU, --smoke


def child_env(out_dir: str, smoke: bool) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      p for p in (REPO, env.get("PYTHONPATH")) if p)
  env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(out_dir, "jax_cache")
  if smoke:
    env["XLA_FLAGS"] = " ".join(
        f for f in (env.get("XLA_FLAGS"), *SMOKE_XLA_FLAGS) if f)
  return env


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m benchmarks.gpu_suite",
      description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, help="folder for the results")
  parser.add_argument("--smoke", action="store_true",
                      help="toy sizes on a CPU in a few minutes")
  parser.add_argument("--original_path", default=None,
                      help="checkout of QJHWC/MambaIR-GPPNN (needs torch)")
  parser.add_argument("--budget_s", type=float, default=None,
                      help="total wall budget (default 450 s; 280 s smoke); "
                      "the sections' own budgets scale with it")
  parser.add_argument("--sections", default=",".join(SECTIONS),
                      help="a comma-separated subset; they run in the "
                      "default's order")
  parser.add_argument("--probe_max_batch", type=int, default=None,
                      help="largest batch the probes try (default 16, "
                      "halved until one fits; 2 in --smoke)")
  args = parser.parse_args(argv)
  unknown = set(args.sections.split(",")) - set(SECTIONS)
  if unknown:
    parser.error(f"--sections: unknown {', '.join(sorted(unknown))}")
  if args.budget_s is None:
    args.budget_s = DEFAULT_BUDGET_S[args.smoke]
  if args.probe_max_batch is None:
    args.probe_max_batch = 2 if args.smoke else 16
  return args


def _interrupt(signum, frame):
  del frame
  raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
  args = parse_args(argv)
  # SIGTERM (a slot ending) stops the child that is running, not only us.
  signal.signal(signal.SIGTERM, _interrupt)
  out = os.path.abspath(args.out)
  shutil.rmtree(os.path.join(out, "jax_cache"), ignore_errors=True)
  chosen = args.sections.split(",")
  scale = args.budget_s / DEFAULT_BUDGET_S[args.smoke]
  sections = [Section(name, run, scale * (smoke_s if args.smoke else gpu_s), min_s)
              for name, (run, gpu_s, smoke_s, min_s) in SECTIONS.items()
              if name in chosen]
  env = child_env(out, args.smoke)
  suite = Suite(out, args.budget_s, meta={
      "command": shlex.join(["python", "-m", "benchmarks.gpu_suite"] +
                            (sys.argv[1:] if argv is None else list(argv))),
      "smoke": args.smoke, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
      "order": [s.name for s in sections],
      "settings": {"JAX_COMPILATION_CACHE_DIR": env["JAX_COMPILATION_CACHE_DIR"],
                   "XLA_FLAGS added": " ".join(SMOKE_XLA_FLAGS) if args.smoke
                                      else "none"}})
  results = suite.run(sections, args=args, env=env)
  for name, result in results.items():
    print(f"{name:12s} {result['status']:8s} {result['wall_s']:6.1f} s  "
          f"{result.get('reason', '')[:150]}")
  print(f"wall {suite.meta['wall_s']:.0f} s; {os.path.join(out, 'gpu_suite.md')}")
  return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
  sys.exit(main())
