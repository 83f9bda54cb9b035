"""Checks a resolved config before anything runs; each failure names the field."""

import math

from pansharp_jax import metrics
from pansharp_jax.data import scene, wald
from pansharp_jax.errors import ConfigError

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
  _require(0 <= float(config.optim.ema_decay) < 1, "optim.ema_decay",
           "must be in [0, 1)")
  _check_predict(config.predict)


def _check_predict(predict) -> None:
  """The output and nodata fields of --mode=predict (tiling is checked with
  the training crop size, in predict.options_from_config; ml_collections
  keeps the booleans boolean)."""
  _require(predict.compress in scene.COMPRESSIONS, "predict.compress",
           f"must be one of {', '.join(scene.COMPRESSIONS)}, got {predict.compress!r}")
  _require(predict.nodata is None or not math.isinf(predict.nodata), "predict.nodata",
           f"must be a number, nan or None, got {predict.nodata}")
