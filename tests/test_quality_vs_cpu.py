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
  one = {600: (3.4, 0.93, 160.0, 1)}  # a single budget: its own point only
  assert quality_vs_cpu.ergas_at(one, 160.0) == 3.4
  assert quality_vs_cpu.ergas_at(one, 161.0) is None


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
  # Past FusionNet's runs and better than all of them: not a verdict, but
  # the best of them beside it.
  assert "| 600 | 90 | 3.300 | 3.400 at 60 s | not measured at that CPU |" in rows
  assert "| 50 | 20 | 4.000 | - | not measured at that CPU |" in rows


def _curve(*points):
  """{steps: (ERGAS, Q2n, CPU s, seeds)} from (CPU s, ERGAS) points."""
  return {i: (e, 0.9, c, 1) for i, (c, e) in enumerate(points)}


def test_level_where_the_curves_cross_in_log_cpu():
  # FusionNet 3.2 -> 3.0 from 100 to 400 s; ours 3.6 at 100 s, 2.8 at 400 s.
  # Both straight in log CPU: the gap 0.4 - 0.6 t (t = log(c/100)/log 4)
  # is zero at t = 2/3, i.e. 100 * 4**(2/3) s.
  other, ours = _curve((100.0, 3.2), (400.0, 3.0)), _curve((100.0, 3.6), (400.0, 2.8))
  cpu = quality_vs_cpu.level_at(ours, other)
  assert math.isclose(cpu, 100 * 4 ** (2 / 3))
  assert math.isclose(quality_vs_cpu.ergas_at(ours, cpu), quality_vs_cpu.ergas_at(other, cpu))
  line = quality_vs_cpu.verdict("ikonos", {"tiny": ours, "fusionnet": other},
                                "tiny", "fusionnet")
  assert line.startswith(f"ikonos: tiny reaches fusionnet at {cpu:.0f} CPU s, ERGAS 3.067")


def test_level_counts_the_other_curves_knots_and_the_shared_range_only():
  # Ours starts before FusionNet's cheapest run and is level only past a
  # knot of FusionNet's (200 s), where its curve bends: the gap is +0.05 at
  # 200 s and -0.1 at 400 s (straight through 100 and 400 s it would not be).
  other = _curve((50.0, 3.5), (200.0, 3.2), (800.0, 2.8))
  ours = _curve((20.0, 5.0), (100.0, 3.6), (400.0, 2.9))
  assert quality_vs_cpu.shared_cpu(ours, other) == (50.0, 400.0)
  cpu = quality_vs_cpu.level_at(ours, other)
  gap = lambda c: quality_vs_cpu.ergas_at(ours, c) - quality_vs_cpu.ergas_at(other, c)
  assert 200.0 < cpu < 400.0 and abs(gap(cpu)) < 1e-9
  assert math.isclose(cpu, 200 * 2 ** (1 / 3))
  assert gap(100.0) > 0 and gap(cpu * 0.99) > 0


def test_level_never_reached_or_ahead_from_the_start():
  other = _curve((40.0, 3.6), (240.0, 3.0))
  behind = _curve((130.0, 4.2), (290.0, 3.2))
  assert quality_vs_cpu.level_at(behind, other) is None
  line = quality_vs_cpu.verdict("wv2", {"tiny": behind, "fusionnet": other},
                                "tiny", "fusionnet")
  gap_lo = 4.2 - quality_vs_cpu.ergas_at(other, 130.0)
  assert line == (f"wv2: tiny stays behind fusionnet from 130 to 240 CPU s (ERGAS "
                  f"tiny - fusionnet: {gap_lo:+.3f} at 130 s, "
                  f"{quality_vs_cpu.ergas_at(behind, 240.0) - 3.0:+.3f} at 240 s)")
  ahead = _curve((100.0, 3.0), (200.0, 2.9))
  assert quality_vs_cpu.level_at(ahead, other) == 100.0
  one = {"tiny": _curve((160.0, 3.38)), "fusionnet": other}  # a single run
  assert quality_vs_cpu.level_at(one["tiny"], other) is None
  gap = 3.38 - quality_vs_cpu.ergas_at(other, 160.0)
  assert quality_vs_cpu.verdict("wv2", one, "tiny", "fusionnet") == (
      f"wv2: tiny stays behind fusionnet at 160 CPU s (ERGAS tiny - fusionnet: {gap:+.3f} at 160 s)")
  apart = _curve((300.0, 2.5), (600.0, 2.4))
  assert quality_vs_cpu.level_at(apart, other) is None
  assert quality_vs_cpu.verdict("wv2", {"tiny": apart, "fusionnet": other}, "tiny",
                                "fusionnet") == "wv2: tiny and fusionnet have no CPU range in common"
