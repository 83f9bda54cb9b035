"""Lowers each GPU config's whole train step for CUDA on this (CPU) host.

  python -m benchmarks.gpu_lowering                       # the three GPU configs
  python -m benchmarks.gpu_lowering --configs=base_256

Each config (configs/<name>.py: bf16, remat) with the fused scan and the
chunked attention (cuDNN attention does not trace without cuDNN) is
exported with `jax.export(..., platforms=("cuda",))` through
train/gpu_export.py at batch 1: the program a GPU host would compile, Pallas
kernels included, lowered but not compiled. Prints, per config, whether it
lowered (else the error), the fused-kernel calls in it and the CPU seconds
it took. tests/test_gpu_export.py runs base_256 in the suite.
"""

import importlib
import time

from absl import app
from absl import flags

from benchmarks import common
from pansharp_jax.ops import scan_kernel
from pansharp_jax.train import gpu_export

_CONFIGS = flags.DEFINE_list("configs", ["base_256", "large_256", "base_512"],
                             "Config modules under configs/.")
_SCAN = flags.DEFINE_string("scan", "fused", "config.model.scan_method.")
_ATTN = flags.DEFINE_string("attn", "chunked", "config.model.attn_impl.")


def lower(name: str) -> list:
  """[config, result, kernel calls, CPU s] for one config."""
  config = importlib.import_module(f"configs.{name}").get_config()
  config.model.scan_method, config.model.attn_impl = _SCAN.value, _ATTN.value
  start = time.process_time()
  try:
    text = gpu_export.export_train_step(config).mlir_module()
  except Exception as e:  # pylint: disable=broad-except
    return [name, f"failed: {type(e).__name__}: {str(e).splitlines()[0]}",
            "", f"{time.process_time() - start:.1f}"]
  return [name, "lowered", text.count(scan_kernel.CUSTOM_CALL),
          f"{time.process_time() - start:.1f}"]


def main(argv):
  del argv
  rows = [lower(name) for name in _CONFIGS.value]
  common.print_header("Train steps lowered for CUDA (jax.export, batch 1)", (
      f"scan_method {_SCAN.value}, attn_impl {_ATTN.value}; bf16, remat as "
      "in each config",))
  common.print_table(["config", "result", "fused kernel calls", "CPU s"], rows)
  if any(row[1] != "lowered" for row in rows):
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
