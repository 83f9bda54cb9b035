"""The trainer's tests run on the tiny stand-in model of train_tiny.py."""

import pytest
import train_tiny

from pansharp_jax.models import registry


@pytest.fixture(autouse=True, scope="session")
def tiny_model():
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(registry, "build_model", train_tiny.build)
    yield
