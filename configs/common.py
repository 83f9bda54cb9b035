"""Fields every config shares; per-size configs import this and change fields.

Each field is documented once here. Override any of them from the command
line, e.g. `--config.optim.lr=1e-4 --config.model.world.preset=core`.
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  """The full set of fields with their defaults (base-size model, 256 px)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # ---- data ----
  config.data = data = ml_collections.ConfigDict()
  data.source = "synthetic"      # synthetic | photo | h5 | geotiff
  data.seed = config.get_ref("seed")  # follows config.seed (synthetic scenes)
  # photo folders root / GeoTIFF folder (geotiff: per scene the last tenth of
  # the tile rows is held out, its first half val, the rest test)
  data.root = ""
  data.train_file = ""           # PanCollection .h5 files
  data.val_file = ""
  data.test_file = ""
  data.num_bands = 4
  data.ratio = 4
  data.max_value = 2047.0        # sensor units of 1.0 (255 for 8-bit data)
  # MTF filters of Wald's protocol (data/wald.py): QB, IKONOS, GeoEye1 (4
  # bands), WV2, WV3 (8 bands); GF2 and generic fit any band count.
  data.sensor = "QB"
  data.image_size = 256          # training crop size (PAN/GT pixels)
  data.worker_count = 0          # grain worker processes (0 = in-process)
  data.synthetic = ml_collections.ConfigDict()
  data.synthetic.scene_size = 256    # GT size of one synthetic scene
  data.synthetic.num_train = 256
  data.synthetic.num_val = 16
  data.synthetic.num_test = 16
  data.synthetic.cache_mb = 1024     # rendered samples kept in memory (per process)
  # Sensor preset (data/presets.py): ikonos | quickbird | geoeye1 | wv2 | wv3 |
  # landsat8 (ratio 2): band and PAN responses, bit depth, the radiometric
  # range real scenes occupy (11-bit scenes are dark), noise, MTF,
  # misregistration. It fixes data.num_bands, ratio, sensor and max_value,
  # which must match (presets.preset_overrides). "": the demo's sensor.
  data.synthetic.preset = ""
  data.augment = ml_collections.ConfigDict()
  data.augment.flips = True
  data.augment.rot90 = True
  data.augment.jitter = 0.0      # max relative brightness/contrast jitter

  # ---- model ----
  config.model = model = ml_collections.ConfigDict()
  model.name = "pansharpener"    # pansharpener | pnn | pannet | dicnn | fusionnet (docs/models.md)
  model.size = "base"            # tiny | small | base | large (models/sizes.py)
  # Output heads (models/pansharpener.py, docs/models.md): residual (the
  # correction is added to the interpolated MS) | sigmoid (SPEC: added to
  # its logit). residual + sample learn faster on dark 11-bit scenes
  # (docs/recipes.md).
  model.head = "residual"
  # sample | band | none (SPEC): the decoder sees lms and pan over their
  # per-sample means (for lms one over its bands, or one per band); a
  # residual correction is scaled back by the lms mean.
  model.input_norm = "sample"
  # pan_minus_ms | none (SPEC): the first convs also read PAN - lms per band
  # (after input_norm), FusionNet's input; ERGAS -9% on Landsat 8, -3% on
  # WorldView-2 at 600 tiny steps (docs/recipes.md).
  model.detail_input = "pan_minus_ms"
  # Residual conv blocks (3x3, 2 dim) on the full-resolution features
  # before the full head; 0: none (SPEC). See docs/models.md.
  model.full_refine = 0
  model.depth = 0                # ASSM blocks per layer; 0: the size's (base 6, large 8; the original builds 1)
  model.dim = 0                  # feature width; 0: the size's (tiny 16, small 32, base 96, large 128)
  model.dtype = "float32"        # compute dtype; params stay float32
  model.remat = False            # rematerialise each ASSM / attention block
  model.scan_layers = True       # nn.scan over each layer's ASSM blocks (faster compile; off on CPU)
  model.directions = 2           # S6 scan orders: 1, 2 (+ column-major), 4 (+ reversed)
  model.scan_method = "auto"     # auto (sequential on CPU, chunked elsewhere) | associative | sequential | chunked
  model.scan_chunk = 256         # steps per chunk of the chunked scan
  model.attn_impl = "auto"       # auto (cuDNN for bf16 on GPU, else chunked) | cudnn | chunked | xla
  model.attn_chunk = 512         # query/key chunk of the chunked attention
  model.dropout = 0.1
  # World-model options (SPEC §2.5). A preset switches options on; the
  # switches below add to it.
  model.world = world = ml_collections.ConfigDict()
  world.preset = "none"          # none | core (WSM + DSC) | full (WSM + DCA + DSC + WAC-X)
  world.wsm = False              # GRU world state, FiLM modulation
  world.dca = False              # DCA-FIM deformable alignment
  world.dsc = False              # sensor-consistency loss (weight loss.dsc)
  world.wacx = False             # cross-band FFT consistency loss (weight loss.wacx)
  world.patch_prior = False      # patch prior refiner at inference
  world.wsm_reset_every = 0      # zero the WSM state every N train steps (0: never)
  world.dca_points = 4
  world.dca_weight = 0.3
  world.patch_size = 32
  world.patch_overlap = 0.25
  world.patch_alpha = 0.5

  # ---- loss weights (SPEC §3) ----
  config.loss = loss = ml_collections.ConfigDict()
  loss.l1 = 1.0
  loss.gradient = 0.3
  loss.ssim = 0.2
  loss.edge = 0.15
  loss.fft = 0.1
  loss.scale_weights = (1.0, 0.5, 0.25)  # full, 1/2, 1/4 outputs
  # The 1/2 and 1/4 terms apply from this ratio on (SPEC: 2, always); at
  # ratio 2 they cost ~4% ERGAS at 600 tiny steps (docs/recipes.md).
  loss.multiscale_from_ratio = 4
  loss.dsc = 0.3                 # lambda_s, used when the DSC option is on
  loss.wacx = 0.5                # lambda_w, used when the WAC-X option is on

  # ---- optimisation ----
  config.optim = optim = ml_collections.ConfigDict()
  optim.lr = 2e-4
  optim.weight_decay = 1e-4
  optim.b1 = 0.9
  optim.b2 = 0.999
  optim.clip_norm = 1.0
  optim.warmup_steps = 500
  optim.min_lr = 1e-7
  optim.restart_period = 20_000  # T_0 in steps (0 = plain cosine to the end)
  optim.restart_mult = 2         # T_mult
  # The same two in epochs of the train split (0 = unused), as the original
  # counts them; the loop converts them with the split's size and the batch
  # size. Set the steps field to 0 when using one, e.g.
  # --config.optim.restart_period=0 --config.optim.restart_period_epochs=20
  optim.warmup_epochs = 0.0
  optim.restart_period_epochs = 0.0
  optim.ema_decay = 0.9999       # EMA of params, used for validation and export
  optim.grad_accum_steps = 1     # micro-batches per update (optax.MultiSteps)
  optim.plateau = plateau = ml_collections.ConfigDict()
  plateau.enabled = False        # scale the lr down when the train loss stalls
  plateau.factor = 0.5
  plateau.patience = 5           # windows without improvement before a cut
  plateau.window = 500           # updates whose mean loss is one comparison
  plateau.cooldown = 0           # windows to wait after a cut

  # ---- loop ----
  config.batch_size = 8          # global batch size; -1 = pick by memory probe
  config.num_train_steps = 100_000  # batches (micro-batches with accumulation)
  config.log_every = 100
  config.eval_every = 2_000
  config.checkpoint_every = 2_000
  config.keep_checkpoints = 3
  config.eval_batch_size = 4
  config.best_metric = "psnr"    # validation metric that picks WORKDIR/best
  config.best_mode = "max"       # max | min
  config.max_nonfinite = 10      # stop after this many non-finite steps in a row
  # A jax.profiler trace of num_steps train steps from first_step into
  # WORKDIR/profile/ (TensorBoard's profile plugin, Perfetto); 0 steps: off.
  config.profile = ml_collections.ConfigDict()
  config.profile.first_step = 10  # after the compile and the first steps
  config.profile.num_steps = 0

  # ---- whole-scene prediction (--mode=predict) ----
  config.predict = predict = ml_collections.ConfigDict()
  predict.tile_size = 0          # tile side in PAN px, a multiple of 4 x ratio (0: data.image_size)
  predict.overlap = -1           # blended overlap in PAN px, a multiple of ratio (-1: a quarter tile)
  predict.batch_size = 0         # tiles per model call (0: eval_batch_size)
  # Nodata value of both inputs, replacing their tags; None: the files' nodata
  # tags, mask and alpha bands. A pixel is nodata where every band is.
  predict.nodata = ml_collections.FieldReference(None, field_type=float)
  predict.zero_is_nodata = False  # pixels 0 in every band are nodata too
  predict.compress = "deflate"   # output compression: deflate | lzw | none (with a predictor)
  predict.baselines = False      # <out>_metrics.json also scores the classical baselines

  # ---- scene adaptation (--mode=adapt; Z-PNN's target-adaptive fine-tuning) ----
  config.adapt = adapt = ml_collections.ConfigDict()
  adapt.steps = 100              # Adam steps on random crops of the scene
  adapt.lr = 3e-4
  adapt.crop_size = 0            # crop side in PAN px, a multiple of 32 and of 4 x ratio
                                 # (0: data.image_size, rounded down to one)
  adapt.batch_size = 0           # crops per step (0: eval_batch_size)
  adapt.spatial_weight = 0.3     # weight of the spatial term beside the spectral one
  adapt.ceiling_window = 16      # px of the windows of the spatial term's rho_max (Z-PNN: 16)
  adapt.eval_tiles = 8           # fixed tiles on which QNR is measured before and after

  # ---- several processes (docs/multihost.md; read on multi-process launches) ----
  config.distributed = dist = ml_collections.ConfigDict()
  dist.initialization_timeout = 120  # s to reach the coordinator and every peer
  dist.heartbeat_timeout = 60    # s a silent peer is waited for; then the others exit 1
  dist.shutdown_timeout = 300    # s the processes wait for each other at exit

  # ---- memory probe (--mode=probe, batch_size=-1) ----
  config.probe = probe = ml_collections.ConfigDict()
  probe.memory_fraction = 0.9    # share of the device memory a step may use
  probe.cpu_budget_gb = 16.0     # device memory assumed where none is reported
  probe.max_batch_size = 64      # largest global batch tried (halved from here)
  probe.confirm = True           # run one real step at the pick
  # Compile for a GPU that is not here (h100 | h200 | a100; docs/gpu.md):
  # --mode=probe plans a GPU job from any host ("": measure the local devices).
  probe.target = ""
  probe.target_devices = 1       # GPUs of the target's data-parallel mesh
  return config
