"""pansharp_jax: pansharpening in JAX/Flax."""

__version__ = "0.1.0"
