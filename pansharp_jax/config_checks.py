"""Checks a resolved config before anything runs; each failure names the field."""

import math

import jax

from pansharp_jax import metrics, scene_metrics
from pansharp_jax.data import presets, scene, wald
from pansharp_jax.errors import ConfigError
from pansharp_jax.models import pansharpener, registry, sizes, world
from pansharp_jax.ops import gpu_targets, pallas_launch
from pansharp_jax.ops.attention import IMPLS
from pansharp_jax.ops.scan2d import DIRECTIONS
from pansharp_jax.ops.selective_scan import METHODS

_SOURCES = ("synthetic", "photo", "h5", "geotiff")
_DTYPES = ("float32", "bfloat16")


def _check_sensor(sensor, num_bands: int) -> None:
  """The sensor must be known and its MTF table must have num_bands bands."""
  try:
    wald.ms_gains(sensor, num_bands)
  except ValueError as e:
    if str(sensor).lower() not in wald.SENSORS:
      raise ConfigError(f"config.data.sensor: {e}") from None
    fitting = [s for s in wald.SENSORS
               if _fits(s, num_bands) and s not in ("none", "generic")]
    raise ConfigError(
        f"config.data.sensor: {e} in data.num_bands; with {num_bands} bands use "
        f"one of {', '.join(fitting)} or generic") from None


def _fits(sensor, num_bands):
  try:
    wald.ms_gains(sensor, num_bands)
  except ValueError:
    return False
  return True


def _require(condition, field, problem):
  if not condition:
    raise ConfigError(f"config.{field}: {problem}")


# Value-domain helpers: `section` is a ConfigDict, `prefix` its dotted path.

def _one_of(section, prefix, name, choices):
  value = section[name]
  _require(value in choices, f"{prefix}{name}",
           f"must be one of {', '.join(map(str, choices))}, got {value!r}")


def _at_least(section, prefix, names, low):
  for name in names:
    _require(section[name] >= low, f"{prefix}{name}",
             f"must be >= {low}, got {section[name]}")


def _in_range(section, prefix, name, interval):
  """`interval` as written in the message: "[0, 1)", "(0, 1]", ..."""
  value = float(section[name])
  low, high = (float(b) for b in interval[1:-1].split(","))
  above = value >= low if interval[0] == "[" else value > low
  below = value <= high if interval[-1] == "]" else value < high
  _require(above and below, f"{prefix}{name}",
           f"must be in {interval}, got {value}")


def validate(config) -> None:
  data = config.data
  ratio = int(data.ratio)
  _require(ratio in (2, 4, 8), "data.ratio", f"must be 2, 4 or 8, got {ratio}")
  size = int(data.image_size)
  _require(size > 0 and size % 4 == 0 and size % ratio == 0, "data.image_size",
           f"must be a positive multiple of 4 and of data.ratio, got {size}")
  _require(int(data.num_bands) in (3, 4, 8), "data.num_bands",
           f"must be 3, 4 or 8, got {data.num_bands}")
  _check_sensor(data.sensor, int(data.num_bands))
  _require(data.source in _SOURCES, "data.source",
           f"must be one of {', '.join(_SOURCES)}, got {data.source!r}")
  _require(float(data.max_value) > 0, "data.max_value", "must be positive")
  _require(config.model.dtype in _DTYPES, "model.dtype",
           f"must be one of {', '.join(_DTYPES)}, got {config.model.dtype!r}")
  _require(int(config.batch_size) > 0 or int(config.batch_size) == -1,
           "batch_size", "must be positive, or -1 to pick it by memory probe")
  _require(int(config.model.get("depth", 0)) >= 0, "model.depth",
           "must be 0 (the size's depth) or positive")
  _require(int(config.num_train_steps) > 0, "num_train_steps", "must be positive")
  for field in ("log_every", "eval_every", "checkpoint_every", "eval_batch_size"):
    _require(int(config[field]) > 0, field, "must be positive")
  _require(config.best_metric in metrics.QUICK_METRICS, "best_metric",
           f"must be a validation metric ({', '.join(metrics.QUICK_METRICS)}),"
           f" got {config.best_metric!r}")
  _require(config.best_mode in ("max", "min"), "best_mode",
           f"must be max or min, got {config.best_mode!r}")
  _require(float(config.optim.lr) > 0, "optim.lr", "must be positive")
  _check_adapt(config.adapt, ratio)
  _require(0 <= float(config.optim.ema_decay) < 1, "optim.ema_decay",
           "must be in [0, 1)")
  _require(0 <= int(config.seed) < 2**32, "seed",
           f"must be in [0, 2**32) (grain's shuffle), got {config.seed}")
  _at_least(config, "", ("keep_checkpoints", "max_nonfinite"), 1)
  _check_data_fields(data)
  _check_model(config.model)
  _check_loss(config.loss)
  _check_optim(config.optim)
  _check_predict(config.predict, ratio)
  _check_probe(config.probe)
  _at_least(config.profile, "profile.", ("first_step", "num_steps"), 0)
  _at_least(config.distributed, "distributed.",
            ("initialization_timeout", "heartbeat_timeout", "shutdown_timeout"), 1)


def fused_scan_device_problem(device) -> str | None:
  """Why the fused scan (Mosaic GPU: NVIDIA only) cannot run on `device`,
  or None. JAX names CUDA and ROCm devices both "gpu"; the client's platform
  version ("cuda ..." / "rocm ...") tells them apart."""
  if device.platform != "gpu":
    return f"backend: {device.platform}"
  version = str(getattr(device.client, "platform_version", "") or "unknown platform")
  if "cuda" not in version.lower():
    return f"{device.device_kind}, {version}"
  return None


def validate_devices(config) -> None:
  """The checks that need JAX's backend. Asking for it starts the backend,
  which must come after `jax.distributed.initialize`: call this after it."""
  # A step compiled for an NVIDIA target (probe.target) may use the kernel
  # whatever this host's devices are.
  if config.model.scan_method == "fused" and not config.probe.target:
    problem = fused_scan_device_problem(jax.devices()[0])
    _require(problem is None, "model.scan_method",
             f"'fused' runs on NVIDIA GPUs only ({problem}); use chunked or sequential")


def _check_data_fields(data):
  """data.* beyond the sizes, bands and sensor checked in `validate`."""
  ratio = int(data.ratio)
  _at_least(data, "data.", ("worker_count",), 0)
  syn = data.synthetic
  scene = int(syn.scene_size)
  _require(scene > 0 and scene % 4 == 0 and scene % ratio == 0,
           "data.synthetic.scene_size",
           f"must be a positive multiple of 4 and of data.ratio, got {scene}")
  # The synthetic source crops training samples from its scenes.
  _require(data.source != "synthetic" or scene >= int(data.image_size),
           "data.synthetic.scene_size",
           f"{scene} is smaller than data.image_size={data.image_size}")
  _at_least(syn, "data.synthetic.", ("num_train", "num_val", "num_test"), 1)
  _at_least(syn, "data.synthetic.", ("cache_mb",), 0)
  if data.source == "synthetic":
    presets.get_preset(data)  # a named preset fixes bands, ratio, sensor, range
  _in_range(data.augment, "data.augment.", "jitter", "[0, 1)")


def _check_model(model):
  _one_of(model, "model.", "name", registry.names())
  _one_of(model, "model.", "size", tuple(sizes.SIZES))
  dim, heads = int(model.get("dim", 0)), sizes.SIZES[model.size].heads
  _require(dim == 0 or (dim > 0 and all(dim % n == 0 for n in heads)),
           "model.dim", f"must be 0 (the size's width) or a positive multiple "
           f"of every attention head count {heads}, got {dim}")
  _one_of(model, "model.", "head", pansharpener.HEADS)
  _one_of(model, "model.", "input_norm", pansharpener.INPUT_NORMS)
  _one_of(model, "model.", "detail_input", pansharpener.DETAIL_INPUTS)
  _at_least(model, "model.", ("full_refine",), 0)
  _one_of(model, "model.", "directions", DIRECTIONS)
  _one_of(model, "model.", "scan_method", METHODS)
  if model.scan_method == "fused":
    reason = pallas_launch.unavailable_reason()
    _require(reason is None, "model.scan_method", f"'fused' needs Mosaic GPU: {reason}")
  _one_of(model, "model.", "attn_impl", IMPLS)
  _at_least(model, "model.", ("scan_chunk", "attn_chunk"), 1)
  _in_range(model, "model.", "dropout", "[0, 1)")
  w = model.world
  _one_of(w, "model.world.", "preset", tuple(world.PRESETS))
  _at_least(w, "model.world.", ("wsm_reset_every", "dca_weight"), 0)
  _at_least(w, "model.world.", ("dca_points", "patch_size"), 1)
  _in_range(w, "model.world.", "patch_overlap", "[0, 1)")
  _in_range(w, "model.world.", "patch_alpha", "[0, 1]")
  foreign = registry.foreign_options(model.name, world.world_options(w))
  _require(not foreign, "model.world",
           f"{', '.join(foreign)} (preset {w.preset!r}) are options of the "
           f"pansharpener, which model.name={model.name} does not have; the "
           "loss terms dsc and wacx apply to every model")


def _check_loss(loss):
  _at_least(loss, "loss.", ("l1", "gradient", "ssim", "edge", "fft", "dsc",
                            "wacx"), 0)
  _one_of(loss, "loss.", "multiscale_from_ratio", (2, 4, 8))
  weights = tuple(loss.scale_weights)
  _require(len(weights) == 3 and min(weights) >= 0, "loss.scale_weights",
           f"must be 3 non-negative weights (full, 1/2, 1/4), got {weights}")


def _check_optim(optim):
  _at_least(optim, "optim.", ("weight_decay", "warmup_steps",
                              "restart_period"), 0)
  _in_range(optim, "optim.", "b1", "[0, 1)")
  _in_range(optim, "optim.", "b2", "[0, 1)")
  _require(float(optim.clip_norm) > 0, "optim.clip_norm",
           f"must be positive, got {optim.clip_norm}")
  _require(0 <= float(optim.min_lr) <= float(optim.lr), "optim.min_lr",
           f"must be in [0, optim.lr = {optim.lr}], got {optim.min_lr}")
  _at_least(optim, "optim.", ("restart_mult", "grad_accum_steps"), 1)
  _check_epoch_fields(optim)
  plateau = optim.plateau
  _in_range(plateau, "optim.plateau.", "factor", "(0, 1)")
  _at_least(plateau, "optim.plateau.", ("patience", "cooldown"), 0)
  _at_least(plateau, "optim.plateau.", ("window",), 1)


# Schedule fields that may be given in epochs instead of steps (converted
# with the train split's size and the batch by train/schedule.py).
EPOCH_FIELDS = {"warmup_epochs": "warmup_steps",
                "restart_period_epochs": "restart_period"}


def _check_epoch_fields(optim):
  """Warmup and restart period come in steps or in epochs, not both."""
  _at_least(optim, "optim.", tuple(EPOCH_FIELDS), 0)
  for epochs_field, steps_field in EPOCH_FIELDS.items():
    _require(not (optim[epochs_field] and optim[steps_field]),
             f"optim.{epochs_field}", f"{optim[epochs_field]} epochs and "
             f"optim.{steps_field}={optim[steps_field]} both set; to count in "
             f"epochs set optim.{steps_field}=0")


def _check_predict(predict, ratio):
  """The config's tiling fields (their 0 / -1 mean: derived at predict time)."""
  tile, overlap, unit = int(predict.tile_size), int(predict.overlap), 4 * ratio
  _require(tile >= 0 and tile % unit == 0, "predict.tile_size",
           f"must be 0 or a positive multiple of 4 x data.ratio = {unit}, "
           f"got {tile}")
  _require(overlap == -1 or (overlap >= 0 and overlap % ratio == 0),
           "predict.overlap", f"must be -1 or a non-negative multiple of "
           f"data.ratio = {ratio}, got {overlap}")
  _at_least(predict, "predict.", ("batch_size",), 0)
  _require(predict.compress in scene.COMPRESSIONS, "predict.compress",
           f"must be one of {', '.join(scene.COMPRESSIONS)}, got {predict.compress!r}")
  _require(predict.nodata is None or not math.isinf(predict.nodata), "predict.nodata",
           f"must be a number, nan or None, got {predict.nodata}")


def _check_probe(probe):
  _in_range(probe, "probe.", "memory_fraction", "(0, 1]")
  _require(float(probe.cpu_budget_gb) > 0, "probe.cpu_budget_gb",
           f"must be positive, got {probe.cpu_budget_gb}")
  _at_least(probe, "probe.", ("max_batch_size", "target_devices"), 1)
  _require(not probe.target or probe.target.lower() in gpu_targets.TARGETS,
           "probe.target", f"unknown GPU {probe.target!r}; one of "
           f"{', '.join(sorted(gpu_targets.TARGETS))} (or empty: this host's devices)")


def _check_adapt(adapt, ratio: int) -> None:
  for field in ("steps", "batch_size", "crop_size"):
    _require(int(adapt[field]) >= 0, f"adapt.{field}", "must be 0 or positive")
  unit = math.lcm(4 * ratio, scene_metrics.BLOCK)
  _require(int(adapt.crop_size) % unit == 0, "adapt.crop_size",
           f"must be a multiple of {unit} (the {scene_metrics.BLOCK} px blocks of the indices "
           f"and 4 x data.ratio = {4 * ratio}), got {adapt.crop_size}")
  # With crop_size 0 the crop depends on the scene: adapt checks it there.
  crop = int(adapt.crop_size) or float("inf")
  _require(ratio <= int(adapt.ceiling_window) <= crop, "adapt.ceiling_window",
           f"must lie in [data.ratio = {ratio}, adapt.crop_size], got {adapt.ceiling_window}")
  _require(float(adapt.lr) > 0, "adapt.lr", "must be positive")
  _require(float(adapt.spatial_weight) >= 0, "adapt.spatial_weight",
           "must be 0 or positive")
  _require(int(adapt.eval_tiles) > 0, "adapt.eval_tiles", "must be positive")
