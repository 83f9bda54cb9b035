"""Large model (SPEC §2.4) on 512 px crops.

As configs/base_512.py: remat and bfloat16 compute (float32 params) because
the 262,144-token full-resolution layer, not the 55M parameters, sets the
memory; depth 8 with dim 128 needs about 1.8x base's activations per block,
hence the smaller batch. `--config.batch_size=-1` lets the memory probe pick.
"""

from configs import common


def get_config():
  config = common.get_base_config()
  config.model.size = "large"
  config.model.dtype = "bfloat16"
  config.model.remat = True
  config.data.image_size = 512
  config.data.synthetic.scene_size = 512
  config.batch_size = 2
  config.optim.lr = 1e-4
  return config
