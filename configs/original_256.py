"""The original PyTorch project's published run, reproduced.

Its `checkpoints_optimized/base_256_1023_1621/results.json`: base model, 256
px crops, 80 epochs at batch size 1, lr 2e-4, every world-model option on
(WSM, DCA-FIM, DSC with lambda_s 0.3, WAC-X with lambda_w 0.5); best
validation PSNR 40.16 dB after 7.0 hours. Its `config.py` and `train.py`
add the schedule and the rest: AdamW (0.9, 0.999, weight decay 1e-4), 5
warmup epochs, cosine warm restarts T_0 20 epochs / T_mult 2 down to 1e-6,
EMA 0.9999, gradient clipping at norm 0.1, the photo folders (3 bands, /255,
flips and rot90, no colour jitter), validation every 5 epochs. Its model
builds one ASSM block per layer whatever `depths` says: `model.depth=1`.

Epochs become steps with the original photo layout's 600 training images
(the first 600 of ROOT/dataset): 600 steps per epoch at batch 1. With
another count, scale `num_train_steps`, `optim.warmup_steps`,
`optim.restart_period` and `eval_every` by (images / 600).
docs/models.md maps each setting to ours and says what differs.

  python main.py --config configs/original_256.py --workdir runs/original \\
      --config.data.root=/path/to/photo
"""

from configs import common

STEPS_PER_EPOCH = 600  # 600 training images at batch size 1


def get_config():
  config = common.get_base_config()
  data = config.data
  data.source = "photo"
  data.root = "photo"
  data.num_bands = 3
  data.sensor = "generic"        # RGB photos: no satellite MTF table
  data.max_value = 255.0
  data.image_size = 256
  data.augment.jitter = 0.0

  config.model.size = "base"
  config.model.depth = 1
  config.model.head = "sigmoid"  # the original's heads (SPEC §2.4), unscaled inputs
  config.model.input_norm = "none"
  config.model.detail_input = "none"
  config.loss.multiscale_from_ratio = 2  # SPEC: the three terms at any ratio
  config.model.remat = True      # a base step at 256 px; see configs/base_256.py
  config.model.world.preset = "full"
  config.loss.dsc = 0.3
  config.loss.wacx = 0.5

  optim = config.optim
  optim.lr = 2e-4
  optim.weight_decay = 1e-4
  optim.b1, optim.b2 = 0.9, 0.999
  optim.clip_norm = 0.1
  optim.warmup_steps = 5 * STEPS_PER_EPOCH
  optim.restart_period = 20 * STEPS_PER_EPOCH
  optim.restart_mult = 2
  optim.min_lr = 1e-6
  optim.ema_decay = 0.9999

  config.batch_size = 1
  config.num_train_steps = 80 * STEPS_PER_EPOCH
  config.eval_every = 5 * STEPS_PER_EPOCH
  config.checkpoint_every = 5 * STEPS_PER_EPOCH
  config.log_every = 100
  return config
