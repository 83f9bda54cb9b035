"""Base model (SPEC §2.4) on 256 px crops."""

from configs import common


def get_config():
  config = common.get_base_config()
  config.model.size = "base"
  config.data.image_size = 256
  # Without remat a base block's activations at 65,536 tokens need about
  # 37 GiB per image (XLA memory analysis, docs/benchmarks.md); with it
  # about 6 GiB.
  config.model.remat = True
  # bfloat16 compute, float32 params (the original trained in fp16 AMP): on a
  # GPU attention "auto" then takes cuDNN flash attention. Full float32:
  # --config.model.dtype=float32.
  config.model.dtype = "bfloat16"
  config.optim.lr = 2e-4
  return config
