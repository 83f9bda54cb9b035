"""Model sizes (SPEC §2.4): base and large as specified, tiny and small for CPU.

The four ASSM layers (full, 1/2, and two at 1/4 resolution) grow per layer i:
d_state + i * d_state_step, num_tokens + i * tokens_step and
inner_rank + i * rank_step. Each layer stacks `depth` ASSM blocks.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class LayerSize:
  """What one ASSM layer computes with (the same for each of its blocks)."""
  d_state: int                    # S6 state size
  num_tokens: int                 # semantic routes (prompts)
  inner_rank: int                 # prompt embedding rank
  mlp_ratio: float = 2.0          # hidden width = dim * mlp_ratio


@dataclasses.dataclass(frozen=True)
class ModelSize:
  dim: int                        # embed_dim of the features
  d_state: int                    # S6 state size of the first layer
  num_tokens: int                 # semantic routes (prompts) of the first layer
  inner_rank: int                 # prompt embedding rank of the first layer
  depth: int                      # ASSM blocks per layer
  heads: tuple[int, int, int]     # cross attention heads at full, 1/2, 1/4
  mlp_ratio: float = 2.0          # ASSM hidden width = dim * mlp_ratio
  d_state_step: int = 2
  tokens_step: int = 64
  rank_step: int = 8
  # Cross attention attends over tokens average-pooled by this factor per
  # stage. 1 (exact attention over every pixel) except in the CPU sizes,
  # where full-resolution global attention would dominate the step time.
  attn_pool: tuple[int, int, int] = (1, 1, 1)
  wsm_hidden: int = 128           # GRU state size of the WSM world option

  def layer(self, i: int) -> LayerSize:
    """The size of ASSM layer i (0..3)."""
    return LayerSize(self.d_state + i * self.d_state_step,
                     self.num_tokens + i * self.tokens_step,
                     self.inner_rank + i * self.rank_step, self.mlp_ratio)


SIZES = {
    "tiny": ModelSize(dim=16, d_state=4, num_tokens=8, inner_rank=8, depth=1,
                      heads=(2, 2, 2), mlp_ratio=1.0, d_state_step=0,
                      tokens_step=0, rank_step=0, attn_pool=(4, 2, 1),
                      wsm_hidden=16),
    "small": ModelSize(dim=32, d_state=8, num_tokens=16, inner_rank=16,
                       depth=2, heads=(4, 4, 4), d_state_step=2,
                       tokens_step=16, rank_step=4, attn_pool=(2, 1, 1),
                       wsm_hidden=32),
    "base": ModelSize(dim=96, d_state=16, num_tokens=128, inner_rank=32,
                      depth=6, heads=(6, 8, 8)),
    "large": ModelSize(dim=128, d_state=20, num_tokens=256, inner_rank=48,
                       depth=8, heads=(8, 8, 8)),
}


def get_size(name: str) -> ModelSize:
  if name not in SIZES:
    raise ValueError(f"config.model.size: unknown size {name!r}; "
                     f"one of {', '.join(SIZES)}")
  return SIZES[name]


def resolve(model_config) -> ModelSize:
  """`model_config.size` with its overrides: `depth` and `dim`, where not 0
  (0 keeps the size's own)."""
  size = get_size(model_config.get("size"))
  for field in ("depth", "dim"):
    if model_config.get(field, 0):
      size = dataclasses.replace(size, **{field: int(model_config.get(field))})
  return size
