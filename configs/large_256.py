"""Large model (SPEC §2.4) on 256 px crops."""

from configs import common


def get_config():
  config = common.get_base_config()
  config.model.size = "large"
  config.data.image_size = 256
  # Activations, not parameters, fill the device at 65,536 tokens per image:
  # remat keeps only each block's inputs (as configs/base_256.py).
  config.model.remat = True
  # bfloat16 compute, float32 params (the original trained in fp16 AMP): on a
  # GPU attention "auto" then takes cuDNN flash attention. Full float32:
  # --config.model.dtype=float32.
  config.model.dtype = "bfloat16"
  config.optim.lr = 1e-4
  return config
