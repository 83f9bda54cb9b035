"""Test-wide setup, before any jax use: 8 fake CPU devices for sharding tests,
and one persistent compilation cache for the whole test run.

Compiling dominates this suite on a CPU, and many tests compile the same
programs: the tiny model's step in several files, main.py in subprocesses.
The cache lives in a fresh directory per run (so a run never reads programs
from an older checkout) and is shared through the environment with the
pytest-xdist workers and every subprocess a test starts; each program is then
compiled once per run. Cache hits are bit-identical executables, so no test
sees different numerics.
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's LLVM backend at -O0: the same HLO passes and IEEE float semantics,
# about a fifth less CPU for the whole suite (its programs are compiled far
# more than they run: tiny shapes, a few steps). Inherited by subprocesses.
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip()

# The controller makes the directory; xdist workers inherit the variable.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="pansharp_jax_test_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
# Cache every compile, however small or fast.
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

# Workers for `-n auto` (pyproject's addopts): one per core, at most 4, since
# each worker holds its own compiled models (up to ~3.5 GB).
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
  return max(1, min(os.cpu_count() or 1, MAX_WORKERS))
