"""The train step a GPU host would compile, exported for CUDA from any host.

`export_train_step(config)` lowers (does not compile) the config's jitted
train step with `jax.export(..., platforms=("cuda",))` while tracing for
"gpu" (ops/backend.py), so a CPU-only machine checks that the GPU program,
Pallas kernels included, lowers: unsupported ops and layouts fail here.
Paths the config leaves to "auto" are picked as on a GPU; cuDNN attention
does not trace without cuDNN, so such a config must name another
`model.attn_impl`.
"""

import jax

from pansharp_jax.ops import backend, scan_kernel
from pansharp_jax.train import builder, parallel


def export_train_step(config, batch_size: int = 1) -> jax.export.Exported:
  """The config's train step at `batch_size`, exported for CUDA."""
  config = config.copy_and_resolve_references()
  config.batch_size = batch_size
  mesh = parallel.make_mesh(1)
  model, optimizer, _ = builder.make_model_and_optimizer(config)
  step = builder.jit_train_step(model, optimizer, config, mesh)
  batch = parallel.abstract_batch(config, batch_size, mesh)
  with backend.tracing_for("gpu"):
    state = jax.eval_shape(builder.make_init(config, model, optimizer, mesh),
                           jax.random.PRNGKey(0))
    return jax.export.export(
        step, platforms=("cuda",),
        disabled_checks=[scan_kernel.EXPORT_CHECK])(state, batch)
