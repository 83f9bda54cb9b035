"""The trainer's tests run on the tiny stand-in model of train_tiny.py."""

import contextlib

import pytest
import train_tiny

from pansharp_jax import commands
from pansharp_jax.models import registry


@contextlib.contextmanager
def _tiny_registry():
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(registry, "build_model", train_tiny.build)
    yield


# Module scope, not session: under pytest-xdist a worker runs files of other
# folders after these, and they must get the real registry back.
@pytest.fixture(autouse=True, scope="module")
def tiny_model():
  with _tiny_registry():
    yield


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
  """A workdir trained for 10 steps (a checkpoint, a best export and the
  final validation report), shared by the tests of trained runs."""
  path = str(tmp_path_factory.mktemp("run"))
  with _tiny_registry():
    commands.train(train_tiny.config(**train_tiny.SHORT_RUN), path)
  return path
