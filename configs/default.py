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
  # Width 24, not tiny's 16: at 600 steps 1.8-5.3% better ERGAS on every
  # sensor preset of docs/recipes.md (round 3), for ~20-30% more CPU per run at 32 px and
  # ~45% more at this config's 64 px.
  config.model.dim = 24
  # Two residual conv blocks on the full-resolution features before the full
  # head (docs/models.md): at 600 steps Landsat 8 (ratio 2) ERGAS -18% on two
  # seeds, now ahead of FusionNet, and 2-5.5% better on the six ratio-4
  # presets rerun (docs/recipes.md, round 4), for 4-9% more CPU at 32 px.
  config.model.full_refine = 2
  # The recipe that beats the classical baselines within the demo's few
  # CPU minutes (docs/recipes.md): a high learning rate for so small a model,
  # one cosine decay, and batches of 4, whose steps cost half those of 8 on
  # a CPU, so the same minutes buy twice the updates (which matter more here
  # than the batch size).
  config.optim.lr = 3e-3
  config.optim.warmup_steps = 10
  config.optim.restart_period = 0
  config.optim.ema_decay = 0.95  # a ~20-step average suits a few hundred steps
  config.batch_size = 4
  config.num_train_steps = 300
  config.log_every = 10
  config.eval_every = 50
  config.checkpoint_every = 100
  return config
