"""How the model's blocks run: options that change speed and memory, not
what the blocks compute (up to float rounding)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class BlockOptions:
  """Passed whole to every ASSM layer and attention block (config.model.*)."""
  directions: int = 2        # S6 scan orders: 1, 2 (+ column-major), 4 (+ reversed)
  scan_method: str = "auto"  # ops.selective_scan method; auto picks per backend
  scan_chunk: int = 256      # steps per chunk of the chunked scan
  attn_impl: str = "auto"    # ops.attention implementation
  attn_chunk: int = 512      # query/key chunk of the chunked attention
  dropout: float = 0.0
  remat: bool = False        # rematerialise each ASSM / attention block
  scan_layers: bool = False  # nn.scan over each layer's ASSM blocks
