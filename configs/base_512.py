"""Base model (SPEC §2.4) on 512 px crops.

At 512 px the full-resolution layer scans 262,144 tokens per image, so the
activations, not the 24M parameters, fill the device:
- remat: each ASSM and attention block keeps only its inputs and recomputes
  the rest in the backward pass (about a third more compute, a fraction of
  the memory);
- bfloat16 compute with float32 params (the S6 scan and the heads stay
  float32 inside); "auto" then picks cuDNN flash attention on GPUs;
- the chunked S6 scan ("auto" off CPU) carries its state across chunks, so
  the scan's memory does not grow with the sequence length.
The batch is half the 256 px one for the same pixels per step; use
`--config.batch_size=-1` to let the memory probe pick the largest that fits.
"""

from configs import common


def get_config():
  config = common.get_base_config()
  config.model.size = "base"
  config.model.dtype = "bfloat16"
  config.model.remat = True
  config.data.image_size = 512
  config.data.synthetic.scene_size = 512
  config.batch_size = 4
  config.optim.lr = 2e-4
  return config
