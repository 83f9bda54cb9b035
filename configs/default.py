"""Tiny model on embedded synthetic data: a complete run in minutes on a CPU."""

from configs import common


def get_config():
  config = common.get_base_config()
  config.data.num_bands = 4
  config.data.image_size = 64
  config.data.synthetic.scene_size = 64
  config.data.synthetic.num_train = 128
  config.data.synthetic.num_val = 8
  config.data.synthetic.num_test = 8
  config.model.size = "tiny"
  config.model.scan_layers = False  # XLA:CPU is slow at convolutions in loops
  config.model.dropout = 0.0
  config.optim.lr = 2e-3
  config.optim.warmup_steps = 10
  config.optim.restart_period = 0
  config.optim.ema_decay = 0.95  # a ~20-step average suits a 100-step run
  config.batch_size = 8
  config.num_train_steps = 100
  config.log_every = 10
  config.eval_every = 50
  config.checkpoint_every = 50
  return config
