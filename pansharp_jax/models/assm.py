"""Dual-modal attentive state-space (ASSM) block and layer (SPEC §2.2).

A block takes MS and PAN feature maps and returns both plus an update:

  per modality: 1x1 projection to `hidden`, conditional positional encoding,
    multi-scale local enhancement, squeeze-excite, modality gates;
  semantic routing: one route per pixel from both modalities (hard
    Gumbel-softmax in training, argmax at eval);
  S6 scan (MambaIRv2's semantic-guided neighbouring): along each scan
    direction the tokens are stably sorted by route (descending on the
    reversed directions, which are thus exact time reversals), scanned, and
    unsorted;
    each route's prompt is added to the scan's C;
  dual-modal fusion: concat -> MLP -> LayerNorm, sigmoid gates, LayerScale;
  out: LayerNorm + linear back to `dim`, added to the input.

Modules without a modality in their name are shared by MS and PAN, which run
through them stacked on the batch axis (one S6 call covers both modalities and
all directions).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from pansharp_jax import ops
from pansharp_jax.models.layers import DepthwiseConv, SqueezeExcite
from pansharp_jax.models.options import BlockOptions
from pansharp_jax.models.sizes import LayerSize


def route_policy(logits, rng=None):
  """One-hot routes (..., num_tokens) from route logits.

  With `rng`: hard Gumbel-softmax, straight-through (the forward value is
  one-hot, the gradient that of the soft sample). Without: argmax.
  """
  logits = logits.astype(jnp.float32)
  num_tokens = logits.shape[-1]
  if rng is None:
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), num_tokens)
  soft = jax.nn.softmax(logits + jax.random.gumbel(rng, logits.shape), axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), num_tokens)
  # Brackets matter: (soft - soft) is exactly 0, so the forward value is
  # exactly one-hot ((1 + soft) - soft can round below 1).
  return hard + (soft - jax.lax.stop_gradient(soft))


def semantic_permutation(keys):
  """Stable sort of each sequence by its integer keys (..., L).

  Returns (perm, inverse): `gather_tokens(x, perm)` groups tokens of equal
  key, keeping their scan order within a group, and `inverse` undoes it.
  """
  perm = jnp.argsort(keys, axis=-1, stable=True)
  return perm, jnp.argsort(perm, axis=-1)


def gather_tokens(x, perm):
  """x (..., L, C) reordered along L by perm (..., L), broadcast on the rest."""
  return jnp.take_along_axis(x, perm[..., None], axis=-2)


class SemanticScan(nn.Module):
  """S6 over token grids in semantic order, along 1, 2 or 4 directions.

  The S6 parameters (x/dt projections, A, D, dt bias) are shared by the
  modalities and directions; they are folded into the scan's batch.
  """
  d_state: int
  directions: int = 2
  method: str = "auto"
  chunk_size: int = 256
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, prompt, route):
    """Scans x (M, B, H, W, D) with prompt (M, B, H, W, d_state) added to C.

    `route` (B, H, W) integer route per pixel, shared by the M modalities.
    Returns an array like x.
    """
    modalities, batch, height, width, channels = x.shape
    k, length = self.directions, height * width

    def sequences(t):  # (M, B, H, W, c) -> (K, M, B, L, c)
      s = ops.cross_scan(t.reshape((modalities * batch, height, width, -1)), k)
      return s.reshape(k, modalities, batch, length, -1)

    keys = ops.cross_scan(route[..., None], k)[..., 0]       # (K, B, L)
    # A reversed order must be the exact time reversal of its forward order,
    # route groups included, so later groups reach earlier ones: it sorts by
    # descending route (the stable sort then reverses each group too).
    backwards = jnp.asarray(ops.reversed_orders(k))[:, None, None]
    keys = jnp.where(backwards, -keys, keys)
    perm, inverse = semantic_permutation(keys[:, None])      # (K, 1, B, L)
    u = gather_tokens(sequences(x), perm)
    prompt = gather_tokens(sequences(prompt), perm)

    rank = ops.dt_rank(channels)
    u = u.reshape(-1, length, channels)
    proj = nn.Dense(rank + 2 * self.d_state, use_bias=False, dtype=self.dtype,
                    name="x_proj")(u)
    dt, b, c = jnp.split(proj, [rank, rank + self.d_state], axis=-1)
    dt = nn.Dense(channels, use_bias=False, dtype=self.dtype,
                  kernel_init=ops.dt_kernel_init(rank), name="dt_proj")(dt)
    # MambaIRv2's prompt-augmented state: C + the token's route prompt.
    c = c.astype(jnp.float32) + prompt.reshape(c.shape).astype(jnp.float32)
    a = -jnp.exp(self.param("A_log", ops.a_log_init, (channels, self.d_state)))
    y = ops.selective_scan(
        u, dt, a, b, c, D=self.param("D", ops.d_init, (channels,)),
        delta_bias=self.param("dt_bias", ops.dt_bias_init(), (channels,)),
        method=self.method, chunk_size=self.chunk_size)

    y = gather_tokens(y.reshape(k, modalities, batch, length, channels), inverse)
    y = ops.cross_merge(y.reshape(k, modalities * batch, length, channels),
                        height, width)
    return y.reshape(x.shape)


class LocalEnhance(nn.Module):
  """Multi-scale local features: depthwise 3x3 and 5x5, fused 1x1-GELU-1x1."""
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    y = jnp.concatenate([DepthwiseConv(3, self.dtype)(x),
                         DepthwiseConv(5, self.dtype)(x)], axis=-1)
    y = nn.gelu(nn.Dense(channels, dtype=self.dtype)(y))
    return nn.Dense(channels, dtype=self.dtype)(y)


class Prompts(nn.Module):
  """Per-route prompts for MS and PAN: one-hot policy @ (embedding @ proj)."""
  num_tokens: int
  inner_rank: int
  d_state: int

  @nn.compact
  def __call__(self, policy):
    """policy (B, H, W, num_tokens) -> prompts (2, B, H, W, d_state)."""
    bound = 1.0 / self.num_tokens
    embedding = self.param(
        "embedding",
        lambda key, shape: jax.random.uniform(key, shape, jnp.float32,
                                              -bound, bound),
        (2, self.num_tokens, self.inner_rank))
    table = nn.Dense(self.d_state, name="token_proj")(embedding)
    return jnp.einsum("bhwt,mtn->mbhwn", policy, table)


class DualModalFusion(nn.Module):
  """Fuses the scanned MS and PAN tokens; gated, with LayerScale residuals."""
  dropout: float = 0.0
  train: bool = False
  layer_scale_init: float = 0.1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, s_ms, s_pan, x_ms, x_pan):
    """s_*: scan outputs; x_*: the scan inputs (the gates look at these)."""
    hidden = s_ms.shape[-1]
    f = nn.Dense(2 * hidden, dtype=self.dtype)(
        jnp.concatenate([s_ms, s_pan], axis=-1))
    f = nn.Dense(hidden, dtype=self.dtype)(nn.gelu(f))
    f = nn.LayerNorm(dtype=self.dtype)(f)
    gates = jax.nn.sigmoid(nn.Dense(3 * hidden, dtype=self.dtype)(
        jnp.concatenate([x_ms, x_pan], axis=-1)))
    g_ms, g_pan, g_context = jnp.split(gates, 3, axis=-1)
    f = nn.Dropout(self.dropout, deterministic=not self.train)(f * g_context)
    scale = self.param("layer_scale",
                       nn.initializers.constant(self.layer_scale_init),
                       (2, hidden)).astype(self.dtype)
    return (s_ms + f * g_ms + scale[0] * x_ms,
            s_pan + f * g_pan + scale[1] * x_pan)


class DualModalASSM(nn.Module):
  """One block: (ms, pan) -> (ms + update, pan + update), in the
  (carry, x) -> (carry, y) form that `nn.scan` stacks."""
  size: LayerSize
  blocks: BlockOptions = BlockOptions()
  train: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, carry, _=None):
    ms, pan = carry
    batch, height, width, dim = ms.shape
    size, opts = self.size, self.blocks
    hidden = int(dim * size.mlp_ratio)
    # 1x1 convolutions are Dense layers (the same map; a plain matmul).
    conv1x1 = lambda n, name: nn.Dense(n, dtype=self.dtype, name=name)

    # Local path, both modalities stacked on the batch axis: [ms; pan].
    x = jnp.concatenate([conv1x1(hidden, "ms_proj")(ms),
                         conv1x1(hidden, "pan_proj")(pan)])
    x = x * jax.nn.sigmoid(DepthwiseConv(3, self.dtype, name="cpe")(x))
    local = LocalEnhance(self.dtype)(x)
    x = x * (1 + SqueezeExcite(max(hidden // 4, 1), self.dtype)(x))
    local_ms, local_pan = jnp.split(local, 2)
    gates = jax.nn.sigmoid(conv1x1(2 * hidden, "modality_gate")(
        jnp.concatenate([local_ms, local_pan], axis=-1)))
    x = x + local * jnp.concatenate(jnp.split(gates, 2, axis=-1))

    # Semantic routing from the block's inputs.
    route_in = (ms + pan) / 2
    logits = nn.Dense(size.num_tokens, dtype=self.dtype, name="route_out")(
        nn.gelu(nn.Dense(max(dim // 3, 4), dtype=self.dtype,
                         name="route_hidden")(route_in)))
    policy = route_policy(logits,
                          self.make_rng("gumbel") if self.train else None)
    prompts = Prompts(size.num_tokens, size.inner_rank, size.d_state)(policy)

    x = x.reshape(2, batch, height, width, hidden)
    y = SemanticScan(size.d_state, opts.directions, opts.scan_method,
                     opts.scan_chunk, self.dtype)(
                         x, prompts, jnp.argmax(policy, axis=-1))
    out_ms, out_pan = DualModalFusion(opts.dropout, self.train,
                                      dtype=self.dtype)(y[0], y[1], x[0], x[1])

    norm = nn.LayerNorm(dtype=self.dtype, name="out_norm")
    proj = nn.Dense(dim, dtype=self.dtype, name="out_proj")
    return (ms + proj(norm(out_ms)), pan + proj(norm(out_pan))), None


class ASSMLayer(nn.Module):
  """`depth` DualModalASSM blocks, each rematerialised if `remat`.

  With `scan_layers` the blocks are stacked with `nn.scan`: one compiled
  body, parameters with a leading depth axis; quicker to compile for deep
  layers, but XLA:CPU runs convolutions inside loops far slower, so CPU
  configs leave it off.
  """
  depth: int
  size: LayerSize
  blocks: BlockOptions = BlockOptions()
  train: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ms, pan):
    opts = self.blocks
    block = DualModalASSM
    if opts.remat:
      block = nn.remat(block, prevent_cse=not opts.scan_layers)
    fields = dict(size=self.size, blocks=opts, train=self.train, dtype=self.dtype)
    if opts.scan_layers:
      stacked = nn.scan(
          block, variable_axes={"params": 0},
          split_rngs={"params": True, "gumbel": True, "dropout": True},
          length=self.depth)(**fields, name="blocks")
      (ms, pan), _ = stacked((ms, pan), None)
    else:
      for i in range(self.depth):
        (ms, pan), _ = block(**fields, name=f"block_{i}")((ms, pan))
    return ms, pan
