"""Which environments are multi-process launches, and what JAX is given."""

import pytest

from pansharp_jax.errors import LaunchError
from pansharp_jax.train import parallel


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, None),   # one srun task
    ({"JAX_NUM_PROCESSES": "1"}, None),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"},
     {"coordinator_address": "h:1", "num_processes": 2, "process_id": 1}),
    # Launchers: JAX's cluster detection fills in what is unset.
    ({"SLURM_NTASKS": "4"},
     {"coordinator_address": None, "num_processes": None, "process_id": None}),
    ({"OMPI_COMM_WORLD_SIZE": "2", "JAX_COORDINATOR_ADDRESS": "h:2"},
     {"coordinator_address": "h:2", "num_processes": None, "process_id": None}),
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "JOB_COMPLETION_INDEX": "0"},
     {"coordinator_address": None, "num_processes": None, "process_id": None}),
])
def test_launch_arguments(environ, expected):
  assert parallel.launch_arguments(environ) == expected


@pytest.mark.parametrize("environ, message", [
    ({"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES: must be an integer >= 1, got 'two'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1"},
     "JAX_PROCESS_ID: must be an integer >= 0, got '-1'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     "JAX_PROCESS_ID: 2 is not below JAX_NUM_PROCESSES=2"),
])
def test_bad_launch_variables_are_one_line(environ, message):
  with pytest.raises(LaunchError, match=f"^{message}$"):
    parallel.launch_arguments(environ)
