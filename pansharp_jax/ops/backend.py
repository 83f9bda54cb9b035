"""The platform the program being traced is for.

Ops that pick a path per platform (the scan's and attention's "auto", the
depthwise convolution's CPU form, the fused scan's CPU check) ask
`backend.target()` instead of `jax.default_backend()`, so that a CPU-only
process can trace the program a GPU host would run and export it
(`jax.export(..., platforms=("cuda",))`) inside `tracing_for("gpu")`.
"""

import contextlib
import threading

import jax

_TARGET = threading.local()


def target() -> str:
  """"cpu", "gpu" or "tpu": the override if one is active, else JAX's backend."""
  return getattr(_TARGET, "platform", None) or jax.default_backend()


@contextlib.contextmanager
def tracing_for(platform: str):
  """Traces as if on `platform` ("gpu", "cpu", "tpu") within the block.

  Running what is traced there still needs that platform's devices.
  """
  if platform not in ("cpu", "gpu", "tpu"):
    raise ValueError(f"tracing_for: platform must be cpu, gpu or tpu, got "
                     f"{platform!r}")
  before = getattr(_TARGET, "platform", None)
  _TARGET.platform = platform
  try:
    yield
  finally:
    _TARGET.platform = before
