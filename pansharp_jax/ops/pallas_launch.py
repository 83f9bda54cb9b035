"""Runs a tile body (ops/scan_tiles.py) over every tile of every (batch,
channel block): `plgpu.kernel` + `plgpu.emit_pipeline` (async copies,
double-buffered) on GPU, or `pl.pallas_call(interpret=True)` over (batch,
block, tile) on CPU (Mosaic GPU's interpreter does not run the pipeline's
copies). The tile loop's carry stays in registers on GPU and in a scratch
ref between grid steps in the interpreter.
"""

import functools
import inspect

import jax
from jax import lax
import jax.numpy as jnp

from pansharp_jax.ops.scan_tiles import TILE

# Any failure, not only ImportError: every `pansharp_jax.ops` import runs
# this, and a broken Mosaic GPU must disable the fused method, not the package.
try:
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu
  _IMPORT_ERROR = None
except Exception as e:  # pylint: disable=broad-except  # pragma: no cover
  pl = plgpu = None
  _IMPORT_ERROR = f"{type(e).__name__}: {e}"


def unavailable_reason():
  """Why the fused kernel cannot be built with this JAX, or None."""
  if plgpu is None:
    return f"jax.experimental.pallas.mosaic_gpu does not import ({_IMPORT_ERROR})"
  for name in ("kernel", "emit_pipeline", "SMEM"):
    if not hasattr(plgpu, name):
      return f"jax {jax.__version__} has no plgpu.{name}"
  if "init_carry" not in inspect.signature(plgpu.emit_pipeline).parameters:
    return f"jax {jax.__version__}: plgpu.emit_pipeline has no init_carry"
  if "out_type" not in inspect.signature(plgpu.kernel).parameters:
    return f"jax {jax.__version__}: plgpu.kernel has no out_type"
  return None


# Drivers. Every operand has a kind that says how a program sees it:
#   "tok":     (batch, length, channels), streamed as (TILE, block) tiles;
#   "state":   (batch, length, d_state), streamed as (TILE, d_state) tiles;
#   "partial": (batch, blocks, length, d_state), one slab per program;
#   "ck":      (batch, tiles, k, channels), one (1, k, block) row per tile;
#   "param":   (k, channels), k vectors per program, the same for each batch;
#   "carry":   (batch, k, channels): an input is the initial carry of the
#              tile loop, an output receives its final value.


def _tile_index(k, n_tiles, reverse):
  return n_tiles - 1 - k if reverse else k


def launch(tile_fn, ins, out_types, *, scratch, block, reverse, interpret,
           name="kernel"):
  """Runs tile_fn over every tile of every (batch, channel block); `name`
  names the GPU kernel (in ptxas' report and in profiles)."""
  kinds_in = [kind for kind, _ in ins]
  kinds_out = [kind for kind, _ in out_types]
  arrays = [x for _, x in ins]
  out_shapes = tuple(s for _, s in out_types)
  batch, length, channels = arrays[kinds_in.index("tok")].shape
  n_tiles, n_blocks = length // TILE, channels // block
  carry_size = arrays[kinds_in.index("carry")].shape[1]
  n_in = len(ins)
  tile_of = functools.partial(_tile_index, n_tiles=n_tiles, reverse=reverse)
  if interpret:
    return _launch_interpret(
        tile_fn, kinds_in, kinds_out, arrays, out_shapes, scratch, block,
        tile_of, (batch, n_blocks, n_tiles), carry_size)

  def kernel(*refs):
    gmem_in, gmem_out = refs[:n_in], refs[n_in:n_in + len(out_shapes)]
    scratch_refs = refs[n_in + len(out_shapes):]
    b, c = lax.axis_index("batch"), lax.axis_index("block")
    cs = pl.ds(c * block, block)
    streamed, specs, params, carry = [], [], [], None
    for kind, ref in zip(kinds_in + kinds_out, gmem_in + gmem_out):
      if kind == "tok":
        streamed.append(ref.at[b, :, cs])
        specs.append(pl.BlockSpec((TILE, block),
                                  lambda k: (tile_of(k), 0)))
      elif kind == "state":
        streamed.append(ref.at[b])
        specs.append(pl.BlockSpec((TILE, ref.shape[-1]),
                                  lambda k: (tile_of(k), 0)))
      elif kind == "partial":
        streamed.append(ref.at[b, c])
        specs.append(pl.BlockSpec((TILE, ref.shape[-1]),
                                  lambda k: (tile_of(k), 0)))
      elif kind == "ck":
        streamed.append(ref.at[b, :, :, cs])
        specs.append(pl.BlockSpec((1, ref.shape[2], block),
                                  lambda k: (tile_of(k), 0, 0)))
      elif kind == "param":
        params = [ref[i, cs] for i in range(ref.shape[0])]
      elif kind == "carry" and carry is None:
        carry = tuple(ref[b, i, cs] for i in range(ref.shape[1]))
    n_streamed_in = sum(k not in ("param", "carry") for k in kinds_in)

    def body(idx, *tile_refs):
      *tile_refs, carry = tile_refs
      new = tile_fn(tile_of(idx[0]), tile_refs[:n_streamed_in],
                    tile_refs[n_streamed_in:], list(carry), params,
                    scratch_refs)
      return tuple(new)

    final = plgpu.emit_pipeline(
        body, grid=(n_tiles,), in_specs=specs[:n_streamed_in],
        out_specs=specs[n_streamed_in:], max_concurrent_steps=2,
        init_carry=carry)(*streamed)
    carry_out = gmem_out[kinds_out.index("carry")]
    for i, v in enumerate(final):
      carry_out[b, i, cs] = v

  kernel.__name__ = kernel.__qualname__ = name
  return plgpu.kernel(
      kernel, out_type=out_shapes,
      scratch_types=[plgpu.SMEM(s.shape, s.dtype) for s in scratch],
      grid=(batch, n_blocks), grid_names=("batch", "block"))(*arrays)


def _launch_interpret(tile_fn, kinds_in, kinds_out, arrays, out_shapes,
                      scratch, block, tile_of, grid, carry_size):
  """The same tiles through `pl.pallas_call(interpret=True)` on CPU."""
  def spec(kind, shape):
    if kind == "tok":
      return pl.BlockSpec((None, TILE, block),
                          lambda b, c, k: (b, tile_of(k), c))
    if kind == "state":
      return pl.BlockSpec((None, TILE, shape[-1]),
                          lambda b, c, k: (b, tile_of(k), 0))
    if kind == "partial":
      return pl.BlockSpec((None, None, TILE, shape[-1]),
                          lambda b, c, k: (b, c, tile_of(k), 0))
    if kind == "ck":
      return pl.BlockSpec((None, 1, shape[2], block),
                          lambda b, c, k: (b, tile_of(k), 0, c))
    if kind == "param":
      return pl.BlockSpec((shape[0], block), lambda b, c, k: (0, c))
    return pl.BlockSpec((None, shape[1], block), lambda b, c, k: (b, 0, c))

  n_in, n_out = len(arrays), len(out_shapes)
  streamed_in = [i for i, k in enumerate(kinds_in) if k not in ("param", "carry")]
  streamed_out = [i for i, k in enumerate(kinds_out) if k != "carry"]

  def kernel(*refs):
    ins, outs = refs[:n_in], refs[n_in:n_in + n_out]
    carry_ref, *scratch_refs = refs[n_in + n_out:]
    k = pl.program_id(2)

    @pl.when(k == 0)
    def _():
      carry_ref[...] = ins[kinds_in.index("carry")][...]

    param_ref = ins[kinds_in.index("param")]
    params = [param_ref[i] for i in range(param_ref.shape[0])]
    new = tile_fn(tile_of(k), [ins[i] for i in streamed_in],
                  [outs[i] for i in streamed_out],
                  [carry_ref[i] for i in range(carry_size)], params,
                  scratch_refs)
    for i, v in enumerate(new):
      carry_ref[i] = v
    outs[kinds_out.index("carry")][...] = carry_ref[...]

  return pl.pallas_call(
      kernel, grid=grid,
      in_specs=[spec(k, x.shape) for k, x in zip(kinds_in, arrays)],
      out_specs=[spec(k, s.shape) for k, s in zip(kinds_out, out_shapes)],
      out_shape=out_shapes,
      scratch_shapes=[plgpu.SMEM((carry_size, block), jnp.float32)]
      + [plgpu.SMEM(s.shape, s.dtype) for s in scratch],
      interpret=True)(*arrays)
