"""The config overrides of one `benchmarks/presets.py` run, shared with
`benchmarks/run_cost.py`, which measures where such a run's CPU goes."""

from pansharp_jax.data import presets


def run_settings(preset: str, seed: str, steps: int, size: int) -> dict:
  """The config overrides of one run (before --set)."""
  settings = {} if preset == "demo" else presets.preset_overrides(preset)
  return {**settings, "seed": seed, "data.image_size": size,
          "data.synthetic.scene_size": size, "data.synthetic.num_train": 256,
          "data.synthetic.num_val": 32, "num_train_steps": steps,
          "eval_every": steps, "log_every": 50, "checkpoint_every": 100_000}
