"""Our model against the original PyTorch MambaIRv2-GPPNN, in one process.

Both train with AdamW and an L1 loss on the three outputs (full, 1/2, 1/4
against 2x2-average-pooled targets, summed), at the same model size (base
or large), band count, image size and batch; one runs after the other. The
script prints both step times, the eval-forward times and the ratio
original / ours (above 1: ours is faster).

The original's code is not part of this repository: pass a checkout of
QJHWC/MambaIR-GPPNN with --original_path. PyTorch is a benchmark-only
dependency (`pip install torch`, the CPU wheel is enough on a CPU host).

  python -m benchmarks.compare_original --original_path=/tmp/mambair_gppnn \
      --image_size=64 --batch_size=2

--flops prints instead the original's FLOPs per train step (forward and
backward of that loss) as PyTorch's FlopCounterMode counts them (matmuls,
convolutions, attention; elementwise ops are not counted), on the meta
device: shapes only, so a 256 px base step counts in seconds on a CPU. With
them, roofline lower bounds of its step on an H100 and an H200 at their
dense fp16/bf16 tensor peaks (docs/benchmarks.md sets them beside ours from
benchmarks/gpu_compile.py).
"""

import contextlib
import importlib
import io
import os
import sys
import time

from absl import app, flags
import numpy as np

from benchmarks import common
from pansharp_jax.ops import gpu_targets
from pansharp_jax.train import parallel

_ORIGINAL_PATH = flags.DEFINE_string(
    "original_path", None,
    "A checkout of github.com/QJHWC/MambaIR-GPPNN; without it the script skips.")
_SIZE = flags.DEFINE_enum("size", "base", ["base", "large"],
                          "Model size (the original has base and large).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "PAN/GT crop size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 2, "Batch size.")
_NUM_BANDS = flags.DEFINE_integer("num_bands", 3, "MS bands.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed steps before timing.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps; the median is reported.")
_FLOPS = flags.DEFINE_bool("flops", False,
                           "Count the original's train-step FLOPs instead of timing.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 0, "torch.set_num_threads (0: PyTorch's default).")

_HEADER = ["model", "params", "compile s", "train step s", "train images/s",
           "eval forward s", "eval images/s"]


class Unavailable(Exception):
  """The original cannot run here; the message says why."""


def _skip(message: str):
  print(f"compare_original: skipped: {message}")
  sys.exit(0)


def import_torch():
  """The torch module, or Unavailable when PyTorch is not installed."""
  try:
    return importlib.import_module("torch")
  except ImportError as e:
    raise Unavailable("PyTorch is not installed (pip install torch; "
                      "benchmark-only)") from e


def load_original(path: str):
  """The original's model factory, imported from its checkout."""
  if not os.path.isfile(os.path.join(path, "models", "mambair_gppnn.py")):
    raise Unavailable(f"{path} is not a MambaIR-GPPNN checkout (no "
                      "models/mambair_gppnn.py)")
  sys.path.insert(0, os.path.abspath(path))
  return importlib.import_module("models.mambair_gppnn").create_mambairv2_gppnn


def bench_original(torch, create_model, *, size: str, num_bands: int,
                   image_size: int, batch_size: int, warmup: int, steps: int,
                   device: str = "cpu", amp: bool = False):
  """(params, train step s, eval forward s) of the original model.

  One train step: AdamW on the L1 loss of the three outputs. With `amp`
  (CUDA) the forward runs under float16 autocast and the update goes
  through a GradScaler, as the original's training script does with AMP.
  Each timed call ends with a CUDA synchronize on a GPU.
  """
  functional = torch.nn.functional
  torch.manual_seed(0)
  with contextlib.redirect_stdout(io.StringIO()):  # its constructor prints
    model = create_model(size, ms_channels=num_bands).to(device)
  optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
  scaler = (torch.amp.GradScaler("cuda", enabled=amp)
            if hasattr(torch.amp, "GradScaler")
            else torch.cuda.amp.GradScaler(enabled=amp))  # torch < 2.3
  autocast = lambda: torch.autocast("cuda", torch.float16, enabled=amp)
  b, s, c = batch_size, image_size, num_bands
  rng = np.random.default_rng(0)
  ms, pan, gt = (torch.from_numpy(rng.random(shape, dtype=np.float32)).to(device)
                 for shape in ((b, c, s, s), (b, 1, s, s), (b, c, s, s)))
  gt_half = functional.avg_pool2d(gt, 2)
  gt_quarter = functional.avg_pool2d(gt_half, 2)
  sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None

  def train_step():
    optimizer.zero_grad(set_to_none=True)
    with autocast():
      sr_1_4, sr_1_2, full = model(ms, pan)  # the original takes upsampled MS
      loss = (functional.l1_loss(full.float(), gt) +
              functional.l1_loss(sr_1_2[0].float(), gt_half) +
              functional.l1_loss(sr_1_4[0].float(), gt_quarter))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    sync()

  def forward():
    with torch.no_grad(), autocast():
      model(ms, pan)
    sync()

  timed = lambda fn: common.time_calls(lambda _: fn(), None, warmup=warmup,
                                       steps=steps)[0]
  model.train()
  train_s = timed(train_step)
  model.eval()
  eval_s = timed(forward)
  return sum(p.numel() for p in model.parameters()), train_s, eval_s


def original_flops(torch, create_model, *, size: str, num_bands: int,
                   image_size: int, batch_size: int) -> float:
  """FLOPs of one original train step, counted on the meta device."""
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=import-outside-toplevel
  functional = torch.nn.functional
  with contextlib.redirect_stdout(io.StringIO()), torch.device("meta"):
    model = create_model(size, ms_channels=num_bands)
  b, s, c = batch_size, image_size, num_bands
  ms, pan, gt = (torch.rand(shape, device="meta")
                 for shape in ((b, c, s, s), (b, 1, s, s), (b, c, s, s)))
  model.train()
  with FlopCounterMode(display=False) as counter:
    sr_1_4, sr_1_2, full = model(ms, pan)
    gt_half = functional.avg_pool2d(gt, 2)
    loss = (functional.l1_loss(full, gt) + functional.l1_loss(sr_1_2[0], gt_half) +
            functional.l1_loss(sr_1_4[0], functional.avg_pool2d(gt_half, 2)))
    loss.backward()
  return float(counter.get_total_flops())


def _print_flops(torch, create_model):
  flops = original_flops(torch, create_model, size=_SIZE.value,
                         num_bands=_NUM_BANDS.value, image_size=_IMAGE_SIZE.value,
                         batch_size=_BATCH_SIZE.value)
  targets = [gpu_targets.TARGETS[t] for t in ("h100", "h200")]
  common.print_header(
      f"The original's train step FLOPs: {_SIZE.value}, {_NUM_BANDS.value} "
      f"bands, {_IMAGE_SIZE.value} px, batch {_BATCH_SIZE.value}",
      (f"torch {torch.__version__}, FlopCounterMode on the meta device",))
  common.print_table(
      ["model", "TFLOP per train step"] + [f"bound ms {t.name} "
                                            f"({t.bf16_dense_flops / 1e12:.0f} TFLOP/s)"
                                            for t in targets],
      [["original (PyTorch)", f"{flops / 1e12:.3f}"] +
       [f"{1e3 * flops / t.bf16_dense_flops:.2f}" for t in targets]])


def _bench_ours():
  """(params, compile s, train step s, eval forward s) of our model."""
  config = common.make_config(_SIZE.value, _IMAGE_SIZE.value, _BATCH_SIZE.value,
                              _NUM_BANDS.value)
  # The original's loss: L1 on the three outputs, summed with equal weights.
  for term in ("gradient", "ssim", "edge", "fft"):
    config.loss[term] = 0.0
  config.loss.scale_weights = (1.0, 1.0, 1.0)
  bench = common.Bench(config, parallel.make_mesh(1))
  predict = bench.compile_predict()
  eval_s = bench.time_predict(predict, warmup=_WARMUP.value,
                              steps=_STEPS.value)[0]
  train = bench.compile_train()
  train_s = bench.time_train(train, warmup=_WARMUP.value, steps=_STEPS.value)[0]
  return bench.num_params, train.compile_s, train_s, eval_s


def _row(name, params, compile_s, train_s, eval_s):
  b = _BATCH_SIZE.value
  return [name, f"{params / 1e6:.2f}M", compile_s, f"{train_s:.3f}",
          f"{b / train_s:.2f}", f"{eval_s:.3f}", f"{b / eval_s:.2f}"]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _ORIGINAL_PATH.value:
    _skip("no --original_path (a checkout of QJHWC/MambaIR-GPPNN) given")
  try:
    torch = import_torch()
    create_model = load_original(_ORIGINAL_PATH.value)
  except Unavailable as e:
    _skip(str(e))
  if _FLOPS.value:
    _print_flops(torch, create_model)
    return
  if _TORCH_THREADS.value:
    torch.set_num_threads(_TORCH_THREADS.value)

  start = time.perf_counter()
  original = bench_original(
      torch, create_model, size=_SIZE.value, num_bands=_NUM_BANDS.value,
      image_size=_IMAGE_SIZE.value, batch_size=_BATCH_SIZE.value,
      warmup=_WARMUP.value, steps=_STEPS.value)
  print(f"original done in {time.perf_counter() - start:.0f} s",
        file=sys.stderr, flush=True)
  ours = _bench_ours()

  common.print_header(
      f"Versus the original: {_SIZE.value}, {_NUM_BANDS.value} bands, "
      f"{_IMAGE_SIZE.value} px, batch {_BATCH_SIZE.value}",
      (f"torch {torch.__version__}, {torch.get_num_threads()} threads",))
  common.print_table(_HEADER, [
      _row("original (PyTorch)", original[0], "-", *original[1:]),
      _row("ours (JAX)", ours[0], f"{ours[1]:.1f}", *ours[2:])])
  print(f"Ratio original / ours: train step {original[1] / ours[2]:.2f}x, "
        f"eval forward {original[2] / ours[3]:.2f}x (above 1: ours is faster).")


if __name__ == "__main__":
  app.run(main)
