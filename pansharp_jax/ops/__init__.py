"""Core operations: the S6 selective scan, 2D cross-scan, Mamba initialisers."""

from pansharp_jax.ops.mamba_init import a_log_init
from pansharp_jax.ops.mamba_init import d_init
from pansharp_jax.ops.mamba_init import dt_bias_init
from pansharp_jax.ops.mamba_init import dt_kernel_init
from pansharp_jax.ops.mamba_init import dt_rank
from pansharp_jax.ops.scan2d import cross_merge
from pansharp_jax.ops.scan2d import cross_scan
from pansharp_jax.ops.scan2d import reversed_orders
from pansharp_jax.ops.selective_scan import selective_scan

__all__ = [
    "a_log_init",
    "cross_merge",
    "cross_scan",
    "d_init",
    "dt_bias_init",
    "dt_kernel_init",
    "dt_rank",
    "reversed_orders",
    "selective_scan",
]
