"""How the train step scales with pixel count and with device count.

--sweep=pixels: one model size over image sizes (64^2 -> 512^2 px), from
  XLA's memory and cost analysis at every size, timed up to --time_up_to.
  The "slope" columns are d log(quantity) / d log(pixels) against the
  previous row: 1 is linear, 2 quadratic.
--sweep=devices: the sharded train step (batch over a 'data' mesh, params
  replicated) on 1, 2, 4, 8 devices at a fixed global batch. On a CPU host
  the devices are fake (jax_num_cpu_devices, set before jax is used) and
  share the same cores: this checks that the sharded step compiles and runs,
  and that the loss does not depend on the device count.

  python -m benchmarks.scaling --sweep=pixels --size=tiny --time_up_to=128
  python -m benchmarks.scaling --sweep=devices --size=tiny --image_size=64
"""

import math
import sys

from absl import app, flags
import jax

from benchmarks import common
from pansharp_jax.train import parallel

_SWEEP = flags.DEFINE_enum("sweep", "pixels", ["pixels", "devices"],
                           "What to scale.")
_SIZE = flags.DEFINE_string("size", "base", "Model size.")
_NUM_BANDS = flags.DEFINE_integer("num_bands", 4, "MS bands.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed steps after compiling.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps; the median is reported.")
# --sweep=pixels
_IMAGE_SIZES = flags.DEFINE_list("image_sizes", ["64", "128", "256", "512"],
                                 "PAN/GT crop sizes (pixels sweep).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1,
                                   "Global batch size (pixels sweep).")
_TIME_UP_TO = flags.DEFINE_integer(
    "time_up_to", 512, "Time image sizes up to this; larger: memory/FLOPs only.")
# --sweep=devices
_DEVICE_COUNTS = flags.DEFINE_list("device_counts", ["1", "2", "4", "8"],
                                   "Mesh sizes (devices sweep).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64,
                                   "Crop size (devices sweep).")
_GLOBAL_BATCH = flags.DEFINE_integer(
    "global_batch", 8, "Global batch size, split over the mesh (devices sweep).")


def _slope(point, previous):
  """d log(value) / d log(pixels) between two (pixels, value) points."""
  if previous is None or not (point[1] > 0 and previous[1] > 0):
    return "-"
  slope = math.log(point[1] / previous[1]) / math.log(point[0] / previous[0])
  return f"{slope:.2f}"


def _pixels_sweep():
  mesh = parallel.make_mesh(1)
  header = ["image", "pixels", "compile s", "step ms", "slope", "temp MiB",
            "slope", "GFLOP/step", "slope"]
  rows, last, last_timed = [], None, None
  for image_size in (int(v) for v in _IMAGE_SIZES.value):
    config = common.make_config(_SIZE.value, image_size, _BATCH_SIZE.value,
                                _NUM_BANDS.value)
    bench = common.Bench(config, mesh)
    compiled = bench.compile_train()
    pixels = image_size**2
    time_cells = ["-", "-"]
    if image_size <= _TIME_UP_TO.value:
      step_s = bench.time_train(compiled, warmup=_WARMUP.value,
                                steps=_STEPS.value)[0]
      time_cells = [f"{step_s * 1e3:,.1f}", _slope((pixels, step_s), last_timed)]
      last_timed = (pixels, step_s)
    rows.append([f"{image_size}^2", f"{pixels:,}", f"{compiled.compile_s:.1f}",
                 *time_cells, common.mib(compiled.temp_bytes),
                 _slope((pixels, compiled.temp_bytes), last and last[:2]),
                 f"{compiled.flops / 1e9:,.1f}",
                 _slope((pixels, compiled.flops), last and last[::2])])
    last = (pixels, compiled.temp_bytes, compiled.flops)
    print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
  common.print_header(
      f"Pixel scaling: {_SIZE.value}, batch {_BATCH_SIZE.value}, train step")
  common.print_table(header, rows)


def _devices_sweep():
  counts = [int(v) for v in _DEVICE_COUNTS.value]
  header = ["devices", "global batch", "per device", "compile s", "step ms",
            "images/s", "peak MiB / device", "loss at step 1"]
  rows = []
  for count in counts:
    if count > jax.device_count():
      print(f"skipping {count} devices: only {jax.device_count()} available",
            file=sys.stderr)
      continue
    config = common.make_config(_SIZE.value, _IMAGE_SIZE.value,
                                _GLOBAL_BATCH.value, _NUM_BANDS.value)
    mesh = parallel.make_mesh(count)
    parallel.check_batch_size(_GLOBAL_BATCH.value, mesh)
    bench = common.Bench(config, mesh)
    compiled = bench.compile_train()
    # The first step's loss (same seed, same batch) must not depend on count.
    bench.state, metrics = compiled.executable(bench.state, bench.batch)
    first_loss = float(metrics["loss"])
    step_s = bench.time_train(compiled, warmup=_WARMUP.value,
                              steps=_STEPS.value)[0]
    rows.append([count, _GLOBAL_BATCH.value, _GLOBAL_BATCH.value // count,
                 f"{compiled.compile_s:.1f}", f"{step_s * 1e3:,.1f}",
                 f"{_GLOBAL_BATCH.value / step_s:,.2f}",
                 common.mib(compiled.peak_bytes), f"{first_loss:.6f}"])
    print(" | ".join(str(v) for v in rows[-1]), file=sys.stderr, flush=True)
  common.print_header(
      f"Device scaling: {_SIZE.value}, {_IMAGE_SIZE.value} px, train step")
  common.print_table(header, rows)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _SWEEP.value == "devices":
    # Fake CPU devices; must be set before jax creates its CPU backend. It
    # does not change an accelerator backend, whose real devices are used.
    jax.config.update("jax_num_cpu_devices",
                      max(int(v) for v in _DEVICE_COUNTS.value))
    _devices_sweep()
  else:
    _pixels_sweep()


if __name__ == "__main__":
  app.run(main)
