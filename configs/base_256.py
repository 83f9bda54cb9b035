"""Base model (SPEC §2.4) on 256 px crops."""

from configs import common


def get_config():
  config = common.get_base_config()
  config.model.size = "base"
  config.data.image_size = 256
  config.optim.lr = 2e-4
  return config
