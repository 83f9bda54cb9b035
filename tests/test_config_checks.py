"""config_checks.validate: every field of configs/common.py outside its value
domain is a ConfigError that names the field, before anything runs."""

import os
import re
import subprocess
import sys
import textwrap
import types

import jax
import pytest

from configs import common, default
from pansharp_jax import config_checks
from pansharp_jax.ops import pallas_launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _set(config, field, value):
  *path, name = field.split(".")
  section = config
  for part in path:
    section = section[part]
  section[name] = value


# (field, bad value, what the message says), for configs/default.py.
BAD = [
    ("seed", -1, "must be in [0, 2**32)"),
    ("data.ratio", 3, "must be 2, 4 or 8"),
    ("data.image_size", 66, "positive multiple of 4 and of data.ratio"),
    ("data.num_bands", 5, "must be 3, 4 or 8"),
    ("data.sensor", "nope", "unknown sensor"),
    ("data.source", "ftp", "must be one of synthetic, photo"),
    ("data.max_value", 0.0, "must be positive"),
    ("data.worker_count", -1, "must be >= 0"),
    ("data.synthetic.scene_size", 30, "positive multiple of 4 and of data.ratio"),
    ("data.synthetic.scene_size", 32, "smaller than data.image_size=64"),
    ("data.synthetic.num_train", 0, "must be >= 1"),
    ("data.synthetic.num_val", 0, "must be >= 1"),
    ("data.synthetic.num_test", 0, "must be >= 1"),
    ("data.synthetic.cache_mb", -1, "must be >= 0"),
    ("data.synthetic.preset", "spot6", "unknown preset 'spot6'"),
    ("data.augment.jitter", 1.0, "must be in [0, 1)"),
    ("model.name", "resnet", "must be one of pansharpener"),
    ("model.dtype", "float16", "must be one of float32, bfloat16"),
    ("model.depth", -1, "must be 0 (the size's depth) or positive"),
    ("model.dim", 15, "positive multiple of every attention head count (2, 2, 2)"),
    ("model.size", "huge", "must be one of tiny, small, base, large"),
    ("model.head", "tanh", "must be one of sigmoid, residual"),
    ("model.input_norm", "batch", "must be one of none, sample, band"),
    ("model.detail_input", "pan", "must be one of none, pan_minus_ms"),
    ("model.full_refine", -1, "must be >= 0"),
    ("model.directions", 3, "must be one of 1, 2, 4"),
    ("model.scan_method", "parallel", "must be one of auto, associative"),
    ("model.scan_chunk", 0, "must be >= 1"),
    ("model.attn_impl", "flash", "must be one of auto, cudnn, xla, chunked"),
    ("model.attn_chunk", 0, "must be >= 1"),
    ("model.dropout", 1.0, "must be in [0, 1)"),
    ("model.world.preset", "most", "must be one of none, core, full"),
    ("model.world.wsm_reset_every", -1, "must be >= 0"),
    ("model.world.dca_points", 0, "must be >= 1"),
    ("model.world.dca_weight", -0.1, "must be >= 0"),
    ("model.world.patch_size", 0, "must be >= 1"),
    ("model.world.patch_overlap", 1.0, "must be in [0, 1)"),
    ("model.world.patch_alpha", 1.5, "must be in [0, 1]"),
    ("loss.l1", -1.0, "must be >= 0"),
    ("loss.gradient", -1.0, "must be >= 0"),
    ("loss.ssim", -1.0, "must be >= 0"),
    ("loss.edge", -1.0, "must be >= 0"),
    ("loss.fft", -1.0, "must be >= 0"),
    ("loss.dsc", -1.0, "must be >= 0"),
    ("loss.wacx", -1.0, "must be >= 0"),
    ("loss.scale_weights", (1.0, 0.5), "3 non-negative weights"),
    ("loss.multiscale_from_ratio", 3, "must be one of 2, 4, 8"),
    ("loss.scale_weights", (1.0, -0.5, 0.25), "3 non-negative weights"),
    ("optim.lr", 0.0, "must be positive"),
    ("optim.ema_decay", 1.0, "must be in [0, 1)"),
    ("optim.weight_decay", -1e-4, "must be >= 0"),
    ("optim.b1", 1.0, "must be in [0, 1)"),
    ("optim.b2", -0.1, "must be in [0, 1)"),
    ("optim.clip_norm", 0.0, "must be positive"),
    ("optim.warmup_steps", -1, "must be >= 0"),
    ("optim.min_lr", 1.0, f"must be in [0, optim.lr = {default.get_config().optim.lr}]"),
    ("optim.restart_period", -1, "must be >= 0"),
    ("optim.restart_mult", 0, "must be >= 1"),
    ("optim.warmup_epochs", -1.0, "must be >= 0"),
    ("optim.restart_period_epochs", -1.0, "must be >= 0"),
    ("optim.grad_accum_steps", 0, "must be >= 1"),
    ("optim.plateau.factor", 1.0, "must be in (0, 1)"),
    ("optim.plateau.patience", -1, "must be >= 0"),
    ("optim.plateau.window", 0, "must be >= 1"),
    ("optim.plateau.cooldown", -1, "must be >= 0"),
    ("batch_size", 0, "must be positive, or -1"),
    ("num_train_steps", 0, "must be positive"),
    ("log_every", 0, "must be positive"),
    ("eval_every", 0, "must be positive"),
    ("checkpoint_every", 0, "must be positive"),
    ("eval_batch_size", 0, "must be positive"),
    ("best_metric", "qnr", "must be a validation metric"),
    ("best_mode", "avg", "must be max or min"),
    ("keep_checkpoints", 0, "must be >= 1"),
    ("max_nonfinite", 0, "must be >= 1"),
    ("predict.tile_size", 24, "0 or a positive multiple of 4 x data.ratio = 16"),
    ("predict.overlap", 6, "-1 or a non-negative multiple of data.ratio = 4"),
    ("predict.batch_size", -1, "must be >= 0"),
    ("probe.memory_fraction", 0.0, "must be in (0, 1]"),
    ("probe.cpu_budget_gb", 0.0, "must be positive"),
    ("probe.max_batch_size", 0, "must be >= 1"),
    ("probe.target_devices", 0, "must be >= 1"),
    ("probe.target", "v100", "unknown GPU 'v100'; one of a100, h100, h200"),
    ("profile.first_step", -1, "must be >= 0"),
    ("profile.num_steps", -1, "must be >= 0"),
    ("predict.compress", "zip", "must be one of deflate, lzw, none"),
    ("predict.nodata", float("inf"), "must be a number, nan or None"),
    ("adapt.steps", -1, "must be 0 or positive"),
    ("adapt.batch_size", -1, "must be 0 or positive"),
    ("adapt.crop_size", 30, "must be a multiple of 32 (the 32 px blocks of the indices"),
    ("adapt.crop_size", 48, "and 4 x data.ratio = 16), got 48"),
    ("adapt.ceiling_window", 2, "must lie in [data.ratio = 4, adapt.crop_size], got 2"),
    ("adapt.lr", 0.0, "must be positive"),
    ("adapt.spatial_weight", -0.1, "must be 0 or positive"),
    ("adapt.eval_tiles", 0, "must be positive"),
    ("distributed.initialization_timeout", 0, "must be >= 1"),
    ("distributed.heartbeat_timeout", -5, "must be >= 1"),
    ("distributed.shutdown_timeout", 0, "must be >= 1"),
]


@pytest.mark.parametrize("field, value, message", BAD,
                         ids=[f"{f}={v}" for f, v, _ in BAD])
def test_value_outside_its_domain_names_the_field(field, value, message):
  config = default.get_config()
  _set(config, field, value)
  with pytest.raises(config_checks.ConfigError,
                     match=rf"^config\.{field}: .*{re.escape(message)}"):
    config_checks.validate(config)


def test_fused_scan_off_a_gpu_is_rejected_by_the_device_checks():
  config = default.get_config()
  config.model.scan_method = "fused"
  with pytest.raises(config_checks.ConfigError, match=re.escape(
      "config.model.scan_method: 'fused' runs on NVIDIA GPUs only (backend: cpu)")):
    config_checks.validate_devices(config)


def _device(platform, kind, version):
  return types.SimpleNamespace(platform=platform, device_kind=kind,
                               client=types.SimpleNamespace(platform_version=version))


def test_fused_scan_on_an_amd_gpu_is_one_line(monkeypatch):
  """ROCm devices are "gpu" too; only a CUDA client runs Mosaic GPU."""
  amd = _device("gpu", "AMD Instinct MI300X", "rocm 60302")
  assert config_checks.fused_scan_device_problem(amd) == "AMD Instinct MI300X, rocm 60302"
  nvidia = _device("gpu", "NVIDIA H100 80GB HBM3", "cuda 12080")
  assert config_checks.fused_scan_device_problem(nvidia) is None
  config = default.get_config()
  config.model.scan_method = "fused"
  monkeypatch.setattr(jax, "devices", lambda: [amd])
  with pytest.raises(config_checks.ConfigError, match=re.escape(
      "config.model.scan_method: 'fused' runs on NVIDIA GPUs only (AMD Instinct MI300X, "
      "rocm 60302); use chunked or sequential")):
    config_checks.validate_devices(config)
  monkeypatch.setattr(jax, "devices", lambda: [nvidia])
  config_checks.validate_devices(config)


def test_fused_scan_is_allowed_when_compiled_for_an_nvidia_target():
  """--mode=probe --config.probe.target=h100 compiles the kernel for an H100
  on any host (docs/gpu.md)."""
  config = default.get_config()
  config.model.scan_method, config.probe.target = "fused", "h100"
  config_checks.validate(config)
  config_checks.validate_devices(config)


def test_validate_leaves_the_backend_unstarted():
  """main.py validates before jax.distributed.initialize, which refuses to run
  once a backend has started: `validate` must not start one (the fused scan's
  platform check is in `validate_devices`)."""
  if pallas_launch.unavailable_reason():
    pytest.skip(pallas_launch.unavailable_reason())
  code = textwrap.dedent("""
      from configs import default
      from pansharp_jax import config_checks
      from jax._src import xla_bridge
      config = default.get_config()
      config.model.scan_method = "fused"
      config_checks.validate(config)
      print(xla_bridge.backends_are_initialized())
  """)
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ["False"]


def test_adapt_ceiling_window_larger_than_the_crop_is_rejected():
  config = default.get_config()
  config.adapt.crop_size, config.adapt.ceiling_window = 32, 48
  with pytest.raises(config_checks.ConfigError, match=re.escape(
      "config.adapt.ceiling_window: must lie in [data.ratio = 4, adapt.crop_size], got 48")):
    config_checks.validate(config)


# Fields any value of whose type is valid: switches, and paths that the data
# sources check when they open them; data.seed follows seed.
FREE = {"data.seed", "data.root", "data.train_file", "data.val_file", "data.test_file",
        "data.augment.flips", "data.augment.rot90", "model.remat",
        "model.scan_layers", "model.world.wsm", "model.world.dca",
        "model.world.dsc", "model.world.wacx", "model.world.patch_prior",
        "optim.plateau.enabled", "probe.confirm", "predict.zero_is_nodata",
        "predict.baselines"}


def _fields(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _fields(value, f"{prefix}{key}.")
    else:
      yield prefix + key


@pytest.mark.parametrize("name", ["pnn", "pannet", "dicnn", "fusionnet"])
def test_reference_cnns_refuse_the_pansharpeners_world_options(name):
  config = default.get_config()
  config.model.name = name
  config.model.world.dsc = config.model.world.wacx = True  # loss terms: fine
  config_checks.validate(config)
  config.model.world.preset = "core"
  with pytest.raises(config_checks.ConfigError,
                     match=rf"^config\.model\.world: wsm \(preset 'core'\) are "
                     rf"options of the pansharpener, which model.name={name} does not have"):
    config_checks.validate(config)


def test_every_field_of_common_is_checked_or_free():
  """Going through configs/common.py field by field: each has a case above."""
  checked = {field for field, _, _ in BAD}
  fields = set(_fields(common.get_base_config().to_dict()))
  assert fields - checked - FREE == set()
