"""Which environments are multi-process launches, and what JAX is given."""

import pytest

from configs import default
from pansharp_jax.errors import LaunchError
from pansharp_jax.train import parallel


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, None),   # one srun task
    ({"JAX_NUM_PROCESSES": "1"}, None),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"},
     {"coordinator_address": "h:1", "num_processes": 2, "process_id": 1}),
    # Launchers: JAX's cluster detection fills in what is unset.
    ({"SLURM_NTASKS": "4", "SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]",
      "SLURM_PROCID": "3", "SLURM_LOCALID": "1"},          # a task of `srun -n 4`
     {"coordinator_address": None, "num_processes": None, "process_id": None}),
    ({"SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}, None),    # `salloc -n 4`, no srun
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
    ({"SLURM_NTASKS": "4(x2)"}, "SLURM_NTASKS: must be an integer >= 1, got '4\\(x2\\)'"),
    ({"OMPI_COMM_WORLD_SIZE": "two"}, "OMPI_COMM_WORLD_SIZE: must be an integer >= 1, got 'two'"),
    ({"PMI_SIZE": "0"}, "PMI_SIZE: must be an integer >= 1, got '0'"),
])
def test_bad_launch_variables_are_one_line(environ, message):
  with pytest.raises(LaunchError, match=f"^{message}$"):
    parallel.launch_arguments(environ)


def test_an_allocation_shell_runs_as_one_process_and_says_so(caplog):
  config = default.get_config()
  with caplog.at_level("WARNING"):
    parallel.initialize_distributed(config, {"SLURM_NTASKS": "4", "SLURM_JOB_ID": "7",
                                             "SLURM_NODELIST": "n[1-2]"})
  lines = [r.getMessage() for r in caplog.records]
  assert lines == ["SLURM_NTASKS=4 but this is not a task of a job step (no srun): running "
                   "as one process; launch with srun for 4 processes"]
