"""2D cross-scan: token grids as 1, 2 or 4 sequences, and back (VMamba/MambaIR).

Layout: `cross_scan` turns an NHWC map (B, H, W, D) into K stacked sequences
(K, B, H*W, D), one per scan order, in this order:

  k = 0  row-major           (0,0) (0,1) ... (0,W-1) (1,0) ...
  k = 1  column-major        (0,0) (1,0) ... (H-1,0) (0,1) ...
  k = 2  row-major reversed
  k = 3  column-major reversed

and K = 1, 2 or 4 takes the first K of them. `cross_merge` puts each
sequence's tokens back at their grid positions and sums over K, so it is the
adjoint (transpose) of `cross_scan`. The leading (K, B) axes are contiguous,
so `ys.reshape(K * B, H * W, D)` runs all directions in one selective scan
call when they share parameters.
"""

import jax.numpy as jnp

DIRECTIONS = (1, 2, 4)


def cross_scan(x, directions=4):
  """Flattens an NHWC map along `directions` scan orders.

  Args:
    x: (batch, height, width, channels).
    directions: 1, 2 or 4 (see the module docstring for the orders).

  Returns:
    (directions, batch, height * width, channels).
  """
  _check_directions(directions)
  batch, height, width, channels = x.shape
  rows = x.reshape(batch, height * width, channels)
  seqs = [rows]
  if directions >= 2:
    cols = x.swapaxes(1, 2).reshape(batch, height * width, channels)
    seqs.append(cols)
  if directions == 4:
    seqs += [jnp.flip(rows, axis=1), jnp.flip(cols, axis=1)]
  return jnp.stack(seqs)


def reversed_orders(directions=4):
  """Which of cross_scan's `directions` orders run backwards (k = 2, 3)."""
  _check_directions(directions)
  return (False, False, True, True)[:directions]


def cross_merge(ys, height, width):
  """Sums K scanned sequences back onto the grid; the adjoint of cross_scan.

  Args:
    ys: (K, batch, height * width, channels) in `cross_scan`'s order.
    height: grid height.
    width: grid width.

  Returns:
    (batch, height, width, channels).
  """
  directions, batch, length, channels = ys.shape
  _check_directions(directions)
  if length != height * width:
    raise ValueError(f"cross_merge: sequences of length {length} do not fit a "
                     f"{height}x{width} grid")
  rows = ys[0]
  if directions == 4:
    rows = rows + jnp.flip(ys[2], axis=1)
  out = rows.reshape(batch, height, width, channels)
  if directions >= 2:
    cols = ys[1]
    if directions == 4:
      cols = cols + jnp.flip(ys[3], axis=1)
    out = out + cols.reshape(batch, width, height, channels).swapaxes(1, 2)
  return out


def _check_directions(directions):
  if directions not in DIRECTIONS:
    raise ValueError(
        f"directions must be one of {DIRECTIONS}, got {directions}")
