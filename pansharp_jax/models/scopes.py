"""Module paths in the compiled ops, for profiles.

Linen ran every module call under a `jax.named_scope` of its name, so an
op's metadata read `jit(step)/transpose(jvp(Pansharpener))/decoder/assm_0/
block_0/...` and benchmarks/common.py groups profiles by that path. NNX adds
no scope. `Module` (the base of every module here) runs `__call__` under
`jax.named_scope(scope_name)`; `name_modules` sets `scope_name` on a network
and every submodule: the root's class name, then each child's Linen name
(models/linen_paths.py), so profiles keep the paths the Linen ones had.
Unnamed modules use their class name; flax's own layers (Linear, Conv) add
no scope, their ops count to the module calling them.
"""

import functools

import jax
from flax import nnx

from pansharp_jax.models import linen_paths


class Module(nnx.Module):
  """An nnx.Module whose `__call__` runs under a named scope."""

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    call = cls.__dict__.get("__call__")
    if call is None:  # inherited: already scoped
      return

    @functools.wraps(call)
    def scoped(self, *args, **kw):
      with jax.named_scope(getattr(self, "scope_name", type(self).__name__)):
        return call(self, *args, **kw)

    cls.__call__ = scoped


def name_modules(module: nnx.Module, name: str | None = None):
  """Sets `scope_name` on `module` (`name`, else its class name) and below.
  A static attribute: it travels in the graphdef of `nnx.split`."""
  module.scope_name = name or type(module).__name__
  for attribute, child in list(vars(module).items()):
    if isinstance(child, nnx.Module):
      name_modules(child, linen_paths.linen_name(module, attribute))
