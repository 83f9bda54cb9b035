"""How the train step scales with pixel count and with device count.

--sweep=pixels: one model size over image sizes (64^2 -> 512^2 px), from
  XLA's memory and cost analysis at every size, timed up to --time_up_to;
  either the whole train step or (--part=assm_block) one ASSM block, the
  scan path, which should be near-linear in pixels.
  The "slope" columns are d log(quantity) / d log(pixels) against the
  previous row: 1 is linear, 2 quadratic.
--sweep=devices: the sharded train step (batch over a 'data' mesh, params
  replicated) on 1, 2, 4, 8 devices at a fixed global batch. On a CPU host
  the devices are fake (jax_num_cpu_devices, set in a fresh subprocess per
  count) and share the same cores: this checks that the sharded step
  compiles and runs, and that the loss does not depend on the device count.

  python -m benchmarks.scaling --sweep=pixels --size=tiny --time_up_to=128
  python -m benchmarks.scaling --sweep=pixels --part=assm_block --size=base
  python -m benchmarks.scaling --sweep=devices --size=tiny --image_size=64
"""

import json
import math
import subprocess
import sys

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks import common
from pansharp_jax.models import assm, options, sizes
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
_PART = flags.DEFINE_enum(
    "part", "step", ["step", "assm_block"],
    "step: the whole train step (its global cross attention is quadratic in "
    "time); assm_block: forward+backward of one full-resolution ASSM block "
    "(the scan path) at the size's layer-0 settings.")
_TIME_UP_TO = flags.DEFINE_integer(
    "time_up_to", 512, "Time image sizes up to this; larger: memory/FLOPs only.")
# --sweep=devices
_DEVICE_COUNTS = flags.DEFINE_list("device_counts", ["1", "2", "4", "8"],
                                   "Mesh sizes (devices sweep).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64,
                                   "Crop size (devices sweep).")
_GLOBAL_BATCH = flags.DEFINE_integer(
    "global_batch", 8, "Global batch size, split over the mesh (devices sweep).")
_CHILD_DEVICES = flags.DEFINE_integer(
    "child_devices", 0,
    "Internal: measure this one device count and print it as JSON.")
_RESULT = "scaling-result: "


def _slope(point, previous):
  """d log(value) / d log(pixels) between two (pixels, value) points."""
  if previous is None or not (point[1] > 0 and previous[1] > 0):
    return "-"
  slope = math.log(point[1] / previous[1]) / math.log(point[0] / previous[0])
  return f"{slope:.2f}"


def _compile_assm_block(config):
  """(compiled fwd+bwd of one layer-0 ASSM block, its inputs), as the model
  builds it at `config`'s size and switches, with the block's gradient wrt
  its params and both inputs."""
  size, model = sizes.get_size(config.model.size), config.model
  block = assm.DualModalASSM(
      size.dim, size.layer(0), dtype=jnp.dtype(model.dtype), rngs=nnx.Rngs(0),
      blocks=options.BlockOptions(directions=int(model.directions),
                                  scan_method=model.scan_method,
                                  scan_chunk=int(model.scan_chunk)))
  graphdef, params = nnx.split(block, nnx.Param)
  params = nnx.to_pure_dict(params)
  s, b = int(config.data.image_size), int(config.batch_size)
  rng = np.random.default_rng(0)
  x = tuple(jnp.asarray(rng.random((b, s, s, size.dim), dtype=np.float32))
            for _ in range(2))
  keys = {"gumbel": jax.random.PRNGKey(1), "dropout": jax.random.PRNGKey(2)}

  def loss(params, x):
    ms, pan = nnx.merge(graphdef, nnx.State(params))(
        *x, train=True, rngs=nnx.Rngs(**keys))
    return jnp.sum(ms) + jnp.sum(pan)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return common.compile_fn(grad, params, x), (params, x)


def _time_assm_block(compiled, args):
  return common.time_calls(lambda _: compiled.executable(*args), None,
                           warmup=_WARMUP.value, steps=_STEPS.value)[0]


def _pixels_sweep():
  mesh = parallel.make_mesh(1)
  header = ["image", "pixels", "compile s", "step ms", "slope", "temp MiB",
            "slope", "GFLOP/step", "slope"]
  rows, last, last_timed = [], None, None
  for image_size in (int(v) for v in _IMAGE_SIZES.value):
    config = common.make_config(_SIZE.value, image_size, _BATCH_SIZE.value,
                                _NUM_BANDS.value)
    if _PART.value == "step":
      bench = common.Bench(config, mesh)
      compiled = bench.compile_train()
      run = lambda: bench.time_train(compiled, warmup=_WARMUP.value,
                                     steps=_STEPS.value)[0]
    else:
      compiled, args = _compile_assm_block(config)
      run = lambda: _time_assm_block(compiled, args)
    pixels = image_size**2
    time_cells = ["-", "-"]
    if image_size <= _TIME_UP_TO.value:
      step_s = run()
      time_cells = [f"{step_s * 1e3:,.1f}", _slope((pixels, step_s), last_timed)]
      last_timed = (pixels, step_s)
    rows.append([f"{image_size}^2", f"{pixels:,}", f"{compiled.compile_s:.1f}",
                 *time_cells, common.mib(compiled.temp_bytes),
                 _slope((pixels, compiled.temp_bytes), last and last[:2]),
                 f"{compiled.flops / 1e9:,.1f}",
                 _slope((pixels, compiled.flops), last and last[::2])])
    last = (pixels, compiled.temp_bytes, compiled.flops)
    print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
  what = ("train step" if _PART.value == "step" else
          "one full-resolution ASSM block, forward+backward")
  common.print_header(
      f"Pixel scaling: {_SIZE.value}, batch {_BATCH_SIZE.value}, {what}",
      (f"model: {common.model_switches(config)}, {_NUM_BANDS.value} bands",
       f"timing: median of {_STEPS.value} calls after {_WARMUP.value} warm-up",))
  common.print_table(header, rows)


def _devices_row(count: int) -> dict:
  """One mesh size, measured in this (child) process."""
  if count > jax.device_count():
    return {"error": f"only {jax.device_count()} devices"}
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
  return {"compile_s": compiled.compile_s, "step_s": step_s,
          "peak_bytes": compiled.peak_bytes, "loss": first_loss,
          "switches": common.model_switches(config)}


def _devices_sweep():
  """Runs each mesh size in a fresh process with exactly that many devices."""
  header = ["devices", "global batch", "per device", "compile s", "step ms",
            "images/s", "peak MiB / device", "loss at step 1"]
  rows, switches = [], ""
  for count in (int(v) for v in _DEVICE_COUNTS.value):
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaling", *sys.argv[1:],
         f"--child_devices={count}"], capture_output=True, text=True)
    results = [line[len(_RESULT):] for line in child.stdout.splitlines()
               if line.startswith(_RESULT)]
    if child.returncode or not results:
      error = (child.stderr.strip().splitlines() or ["no output"])[-1]
      rows.append([count, _GLOBAL_BATCH.value, "-", "-", "-", "-", "-",
                   f"failed (exit {child.returncode}): {error}"])
    else:
      r = json.loads(results[-1])
      if "error" in r:
        rows.append([count, _GLOBAL_BATCH.value] + ["-"] * 5 +
                    [f"skipped: {r['error']}"])
      else:
        switches = r["switches"]
        rows.append([count, _GLOBAL_BATCH.value, _GLOBAL_BATCH.value // count,
                     f"{r['compile_s']:.1f}", f"{r['step_s'] * 1e3:,.1f}",
                     f"{_GLOBAL_BATCH.value / r['step_s']:,.2f}",
                     common.mib(r["peak_bytes"]), f"{r['loss']:.6f}"])
    print(" | ".join(str(v) for v in rows[-1]), file=sys.stderr, flush=True)
  common.print_header(
      f"Device scaling: {_SIZE.value}, {_IMAGE_SIZE.value} px, train step",
      (f"model: {switches}, {_NUM_BANDS.value} bands",
       "one subprocess per device count; on CPU the devices are fake "
       "(jax_num_cpu_devices) and share the same cores"))
  common.print_table(header, rows)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CHILD_DEVICES.value:
    # Must be set before jax creates its CPU backend; an accelerator
    # backend keeps its real devices.
    jax.config.update("jax_num_cpu_devices", _CHILD_DEVICES.value)
    print(_RESULT + json.dumps(_devices_row(_CHILD_DEVICES.value)), flush=True)
  elif _SWEEP.value == "devices":
    _devices_sweep()
  else:
    _pixels_sweep()


if __name__ == "__main__":
  app.run(main)
