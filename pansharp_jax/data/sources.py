"""Picks the data source named by `config.data.source`."""

from pansharp_jax.data import synthetic


def make_source(data_config, split: str):
  if data_config.source == "synthetic":
    return synthetic.SyntheticSource(data_config, split)
  raise ValueError(f"config.data.source: unknown source {data_config.source!r}")
