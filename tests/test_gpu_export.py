"""The whole train step of a GPU config lowers for CUDA on a CPU-only host
(train/gpu_export.py): the fused scan's kernels, bf16, remat and the
chunked attention, as a GPU host would compile them.

One config, base_256 (about 60 s of CPU: most of it lowering the kernels'
twelve calls and the program); benchmarks/gpu_lowering.py lowers base_256,
large_256 and base_512 (about 1-1.5 min of CPU each).
"""

import pytest

from configs import base_256
from pansharp_jax.ops import pallas_launch, scan_kernel
from pansharp_jax.train import gpu_export


@pytest.mark.skipif(pallas_launch.unavailable_reason() is not None,
                    reason=f"fused scan: {pallas_launch.unavailable_reason()}")
def test_base_256_train_step_lowers_for_cuda():
  config = base_256.get_config()
  config.model.scan_method, config.model.attn_impl = "fused", "chunked"
  exported = gpu_export.export_train_step(config)
  assert exported.platforms == ("cuda",)
  # Call sites in the text (identical blocks share one function): per ASSM
  # layer (4, each its own d_state) the forward kernel, its rerun under
  # remat and the backward kernel.
  assert exported.mlir_module().count(scan_kernel.CUSTOM_CALL) == 12
