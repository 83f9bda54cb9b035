"""The memory probe's measurements for one model and crop size, against several budgets.

Compiles the real train step (as `--mode=probe` does, through
`pansharp_jax.train.memory.measure`) for global batch sizes halving from
--max_batch_size, until one fits the smallest budget, and prints XLA's
per-device memory analysis with the budgets each size fits. Nothing is run:
on a CPU the budgets stand for accelerator memory that is not there.
A budget of B GiB allows memory_fraction x B GiB, as `probe.cpu_budget_gb`.

  python -m benchmarks.probe --size=base --image_size=256 --budgets_gb=16,80
  python -m benchmarks.probe --size=base --image_size=512 --dtype=bfloat16 --remat
"""

import sys

from absl import app, flags
import jax

from benchmarks import common
from pansharp_jax.train import builder, memory, parallel

_SIZE = flags.DEFINE_string("size", "base", "Model size.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 256, "PAN/GT crop size.")
_NUM_BANDS = flags.DEFINE_integer("num_bands", 4, "MS bands.")
_BUDGETS = flags.DEFINE_list("budgets_gb", ["16", "80"],
                             "Device memory budgets, GiB per device.")
_FRACTION = flags.DEFINE_float("memory_fraction", 0.9,
                               "Share of each budget a step may use.")
_MAX_BATCH = flags.DEFINE_integer("max_batch_size", 64,
                                  "Largest global batch size tried.")
_DEVICES = flags.DEFINE_integer("devices", 1, "Devices in the data mesh.")


def main(argv):
  del argv
  config = common.make_config(_SIZE.value, _IMAGE_SIZE.value, 1, _NUM_BANDS.value)
  config.probe.memory_fraction = _FRACTION.value
  mesh = parallel.make_mesh(_DEVICES.value)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  step = builder.jit_train_step(model, optimizer, config, mesh)
  state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                         jax.random.PRNGKey(0))
  budgets = {float(b): int(float(b) * _FRACTION.value * memory.GIB)
             for b in _BUDGETS.value}

  rows, picks = [], {}
  for size in memory.candidates(_MAX_BATCH.value, mesh.devices.size):
    _, m = memory.measure(step, state, size, config, mesh, min(budgets.values()))
    print(f"batch {size}: {m.total / memory.GIB:.2f} GiB per device, compiled "
          f"in {m.compile_s:.0f} s", file=sys.stderr, flush=True)
    fits = {b: m.total <= limit for b, limit in budgets.items()}
    for b, ok in fits.items():
      if ok:
        picks.setdefault(b, size)
    rows.append([m.batch_size, m.per_device] +
                [f"{x / memory.GIB:.3f}" for x in
                 (m.argument, m.output, m.temp, m.alias, m.total)] +
                ["yes" if fits[b] else "no" for b in budgets] +
                [f"{m.compile_s:.0f}"])
    if len(picks) == len(budgets):
      break

  common.print_header(
      f"Memory probe: {_SIZE.value} model, {_IMAGE_SIZE.value} px, "
      f"dtype {config.model.dtype}, remat {config.model.remat}",
      (f"budgets: {', '.join(f'{b:g} GiB' for b in budgets)} x "
       f"{_FRACTION.value:g} (memory_fraction); per-device GiB from XLA's "
       "memory_analysis() of the compiled train step",))
  common.print_table(
      ["batch", "per device", "arguments", "outputs", "temporaries", "aliased",
       "total"] + [f"fits {b:g} GiB" for b in budgets] + ["compile s"], rows)
  for b in budgets:
    print(f"- {b:g} GiB: batch size {picks.get(b, 'none (smallest tried does not fit)')}")


if __name__ == "__main__":
  app.run(main)
