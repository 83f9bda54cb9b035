"""benchmarks/quality_vs_cpu.py: a network's ERGAS at given CPU seconds, and
the equal-CPU table that sets our runs beside FusionNet's."""

import math

from benchmarks import quality_vs_cpu

# {network: {steps: (ERGAS, Q2n, CPU s, seeds)}}, as collect() returns it.
RESULT = {
    "fusionnet": {600: (3.6, 0.92, 40.0, 1), 1200: (3.4, 0.93, 60.0, 1),
                  2400: (3.2, 0.94, 110.0, 1)},
    "tiny": {150: (4.1, 0.90, 100.0, 1), 300: (3.3, 0.94, 120.0, 1),
             600: (3.5, 0.93, 180.0, 1)},
}


def test_ergas_between_two_budgets_is_linear_in_log_cpu():
  by = RESULT["fusionnet"]
  weight = math.log(80 / 60) / math.log(110 / 60)
  assert math.isclose(quality_vs_cpu.ergas_at(by, 80.0), 3.4 + weight * (3.2 - 3.4))
  assert quality_vs_cpu.ergas_at(by, 60.0) == 3.4  # a measured budget
  assert quality_vs_cpu.ergas_at(by, 30.0) is None  # below its cheapest run
  assert quality_vs_cpu.ergas_at(by, 200.0) is None  # past its dearest run


def test_equal_cpu_rows_name_the_network_ahead():
  rows = quality_vs_cpu.equal_cpu("ikonos", RESULT, "tiny", "fusionnet").splitlines()
  theirs = quality_vs_cpu.ergas_at(RESULT["fusionnet"], 100.0)
  assert f"| 150 | 100 | 4.100 | {theirs:.3f} | fusionnet |" in rows
  # 3.3 at 120 s: FusionNet's best run, 3.2 at 110 s, is cheaper and better.
  assert "| 300 | 120 | 3.300 | 3.200 at 110 s | fusionnet, with less CPU |" in rows
  assert "| 600 | 180 | 3.500 | 3.200 at 110 s | fusionnet, with less CPU |" in rows


def test_ours_ahead_and_out_of_range_rows():
  result = {"fusionnet": {600: (3.6, 0.92, 40.0, 1), 1200: (3.4, 0.93, 60.0, 1)},
            "tiny": {150: (3.45, 0.93, 50.0, 1), 600: (3.3, 0.94, 90.0, 1),
                     50: (4.0, 0.9, 20.0, 1)}}
  rows = quality_vs_cpu.equal_cpu("wv2", result, "tiny", "fusionnet").splitlines()
  theirs = quality_vs_cpu.ergas_at(result["fusionnet"], 50.0)
  assert f"| 150 | 50 | 3.450 | {theirs:.3f} | tiny |" in rows
  # Past FusionNet's runs and better than all of them: not a verdict.
  assert "| 600 | 90 | 3.300 | - | not measured at that CPU |" in rows
  assert "| 50 | 20 | 4.000 | - | not measured at that CPU |" in rows
