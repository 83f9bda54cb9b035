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
all directions). `linen_names`: the Linen versions' names of the layers
(models/linen_paths.py).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pansharp_jax import ops
from pansharp_jax.models import scopes
from pansharp_jax.models.layers import DepthwiseConv, SqueezeExcite, dense
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


class SemanticScan(scopes.Module):
  """S6 over token grids in semantic order, along 1, 2 or 4 directions.

  The S6 parameters (x/dt projections, A, D, dt bias) are shared by the
  modalities and directions; they are folded into the scan's batch.
  """

  def __init__(self, channels, d_state, directions=2, method="auto",
               chunk_size=256, *, dtype=jnp.float32, rngs):
    rank = ops.dt_rank(channels)
    self.x_proj = dense(channels, rank + 2 * d_state, use_bias=False,
                        dtype=dtype, rngs=rngs)
    self.dt_proj = dense(rank, channels, use_bias=False, dtype=dtype,
                         kernel_init=ops.dt_kernel_init(rank), rngs=rngs)
    self.A_log = nnx.Param(ops.a_log_init(rngs.params(), (channels, d_state)))
    self.D = nnx.Param(ops.d_init(rngs.params(), (channels,)))
    self.dt_bias = nnx.Param(ops.dt_bias_init()(rngs.params(), (channels,)))
    self.d_state, self.directions = d_state, directions
    self.method, self.chunk_size = method, chunk_size

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
    dt, b, c = jnp.split(self.x_proj(u), [rank, rank + self.d_state], axis=-1)
    dt = self.dt_proj(dt)
    # MambaIRv2's prompt-augmented state: C + the token's route prompt.
    c = c.astype(jnp.float32) + prompt.reshape(c.shape).astype(jnp.float32)
    a = -jnp.exp(self.A_log[...])
    y = ops.selective_scan(
        u, dt, a, b, c, D=self.D[...], delta_bias=self.dt_bias[...],
        method=self.method, chunk_size=self.chunk_size)

    y = gather_tokens(y.reshape(k, modalities, batch, length, channels), inverse)
    y = ops.cross_merge(y.reshape(k, modalities * batch, length, channels),
                        height, width)
    return y.reshape(x.shape)


class LocalEnhance(scopes.Module):
  """Multi-scale local features: depthwise 3x3 and 5x5, fused 1x1-GELU-1x1."""
  linen_names = {"depthwise_3": "DepthwiseConv_0",
                 "depthwise_5": "DepthwiseConv_1",
                 "fuse": "Dense_0", "out": "Dense_1"}

  def __init__(self, channels, *, dtype=jnp.float32, rngs):
    self.depthwise_3 = DepthwiseConv(channels, 3, dtype=dtype, rngs=rngs)
    self.depthwise_5 = DepthwiseConv(channels, 5, dtype=dtype, rngs=rngs)
    self.fuse = dense(2 * channels, channels, dtype=dtype, rngs=rngs)
    self.out = dense(channels, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    y = jnp.concatenate([self.depthwise_3(x), self.depthwise_5(x)], axis=-1)
    return self.out(nnx.gelu(self.fuse(y)))


class Prompts(scopes.Module):
  """Per-route prompts for MS and PAN: one-hot policy @ (embedding @ proj)."""

  def __init__(self, num_tokens, inner_rank, d_state, *, rngs):
    bound = 1.0 / num_tokens
    self.embedding = nnx.Param(jax.random.uniform(
        rngs.params(), (2, num_tokens, inner_rank), jnp.float32, -bound, bound))
    # dtype None: computed in the parameters' float32, as the prompts enter C.
    self.token_proj = dense(inner_rank, d_state, dtype=None, rngs=rngs)

  def __call__(self, policy):
    """policy (B, H, W, num_tokens) -> prompts (2, B, H, W, d_state)."""
    table = self.token_proj(self.embedding[...])
    return jnp.einsum("bhwt,mtn->mbhwn", policy, table)


class DualModalFusion(scopes.Module):
  """Fuses the scanned MS and PAN tokens; gated, with LayerScale residuals."""
  linen_names = {"fuse_in": "Dense_0", "fuse_out": "Dense_1",
                 "norm": "LayerNorm_0", "gates": "Dense_2"}

  def __init__(self, hidden, dropout=0.0, layer_scale_init=0.1, *,
               dtype=jnp.float32, rngs):
    self.fuse_in = dense(2 * hidden, 2 * hidden, dtype=dtype, rngs=rngs)
    self.fuse_out = dense(2 * hidden, hidden, dtype=dtype, rngs=rngs)
    self.norm = nnx.LayerNorm(hidden, dtype=dtype, rngs=rngs)
    self.gates = dense(2 * hidden, 3 * hidden, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout)
    self.layer_scale = nnx.Param(jnp.full((2, hidden), layer_scale_init))
    self.dtype = dtype

  def __call__(self, s_ms, s_pan, x_ms, x_pan, *, train=False, rngs=None):
    """s_*: scan outputs; x_*: the scan inputs (the gates look at these)."""
    f = self.fuse_in(jnp.concatenate([s_ms, s_pan], axis=-1))
    f = self.norm(self.fuse_out(nnx.gelu(f)))
    gates = jax.nn.sigmoid(self.gates(jnp.concatenate([x_ms, x_pan], axis=-1)))
    g_ms, g_pan, g_context = jnp.split(gates, 3, axis=-1)
    f = self.dropout(f * g_context, deterministic=not train, rngs=rngs)
    scale = self.layer_scale[...].astype(self.dtype)
    return (s_ms + f * g_ms + scale[0] * x_ms,
            s_pan + f * g_pan + scale[1] * x_pan)


class DualModalASSM(scopes.Module):
  """One block: (ms, pan) -> (ms + update, pan + update)."""
  linen_names = {"local": "LocalEnhance_0", "excite": "SqueezeExcite_0",
                 "prompts": "Prompts_0", "scan": "SemanticScan_0",
                 "fusion": "DualModalFusion_0"}

  def __init__(self, dim, size: LayerSize, blocks: BlockOptions = BlockOptions(),
               *, dtype=jnp.float32, rngs):
    hidden = int(dim * size.mlp_ratio)
    layer = lambda n_in, n_out: dense(n_in, n_out, dtype=dtype, rngs=rngs)
    # 1x1 convolutions are Linear layers (the same map; a plain matmul).
    self.ms_proj, self.pan_proj = layer(dim, hidden), layer(dim, hidden)
    self.cpe = DepthwiseConv(hidden, 3, dtype=dtype, rngs=rngs)
    self.local = LocalEnhance(hidden, dtype=dtype, rngs=rngs)
    self.excite = SqueezeExcite(hidden, max(hidden // 4, 1), dtype=dtype,
                                rngs=rngs)
    self.modality_gate = layer(2 * hidden, 2 * hidden)
    self.route_hidden = layer(dim, max(dim // 3, 4))
    self.route_out = layer(max(dim // 3, 4), size.num_tokens)
    self.prompts = Prompts(size.num_tokens, size.inner_rank, size.d_state,
                           rngs=rngs)
    self.scan = SemanticScan(hidden, size.d_state, blocks.directions,
                             blocks.scan_method, blocks.scan_chunk,
                             dtype=dtype, rngs=rngs)
    self.fusion = DualModalFusion(hidden, blocks.dropout, dtype=dtype,
                                  rngs=rngs)
    self.out_norm = nnx.LayerNorm(hidden, dtype=dtype, rngs=rngs)
    self.out_proj = layer(hidden, dim)
    self.hidden = hidden

  def __call__(self, ms, pan, *, train=False, rngs=None):
    batch, height, width, _ = ms.shape
    hidden = self.hidden

    # Local path, both modalities stacked on the batch axis: [ms; pan].
    x = jnp.concatenate([self.ms_proj(ms), self.pan_proj(pan)])
    x = x * jax.nn.sigmoid(self.cpe(x))
    local = self.local(x)
    x = x * (1 + self.excite(x))
    local_ms, local_pan = jnp.split(local, 2)
    gates = jax.nn.sigmoid(self.modality_gate(
        jnp.concatenate([local_ms, local_pan], axis=-1)))
    x = x + local * jnp.concatenate(jnp.split(gates, 2, axis=-1))

    # Semantic routing from the block's inputs.
    route_in = (ms + pan) / 2
    logits = self.route_out(nnx.gelu(self.route_hidden(route_in)))
    policy = route_policy(logits, rngs.gumbel() if train else None)
    prompts = self.prompts(policy)

    x = x.reshape(2, batch, height, width, hidden)
    y = self.scan(x, prompts, jnp.argmax(policy, axis=-1))
    out_ms, out_pan = self.fusion(y[0], y[1], x[0], x[1], train=train,
                                  rngs=rngs)
    return (ms + self.out_proj(self.out_norm(out_ms)),
            pan + self.out_proj(self.out_norm(out_pan)))


class ASSMLayer(scopes.Module):
  """`depth` DualModalASSM blocks, each rematerialised if `remat`.

  With `scan_layers` the blocks are stacked (parameters with a leading depth
  axis) and run by `nnx.scan`: one compiled body; quicker to compile for
  deep layers, but XLA:CPU runs convolutions inside loops far slower, so CPU
  configs leave it off.
  """
  linen_names = {"stacked": "blocks"}

  def __init__(self, dim, depth, size: LayerSize,
               blocks: BlockOptions = BlockOptions(), *, dtype=jnp.float32,
               rngs):
    make = lambda r: DualModalASSM(dim, size, blocks, dtype=dtype, rngs=r)
    self.depth, self.options = depth, blocks
    if blocks.scan_layers:
      self.stacked = nnx.split_rngs(splits=depth)(
          nnx.vmap(make, in_axes=0, out_axes=0))(rngs)
    else:
      for i in range(depth):
        setattr(self, f"block_{i}", make(rngs))

  def __call__(self, ms, pan, *, train=False, rngs=None):
    opts = self.options

    def run(block, carry, keys):
      block_rngs = nnx.Rngs(gumbel=keys[0], dropout=keys[1]) if train else None
      return block(*carry, train=train, rngs=block_rngs)

    if opts.remat:
      run = nnx.remat(run, prevent_cse=not opts.scan_layers)
    # Each block's (gumbel, dropout) keys, drawn before the blocks run.
    keys = ((jax.random.split(rngs.gumbel(), self.depth),
             jax.random.split(rngs.dropout(), self.depth)) if train else None)
    if opts.scan_layers:
      body = lambda carry, block, keys: (run(block, carry, keys), None)
      scanned = nnx.scan(body, in_axes=(nnx.Carry, 0, 0 if train else None),
                         out_axes=(nnx.Carry, 0))
      (ms, pan), _ = scanned((ms, pan), self.stacked, keys)
    else:
      for i in range(self.depth):
        block_keys = (keys[0][i], keys[1][i]) if train else None
        ms, pan = run(getattr(self, f"block_{i}"), (ms, pan), block_keys)
    return ms, pan
