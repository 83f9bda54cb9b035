"""The scaling study's table and plot: quality against steps and CPU seconds.

    python -m benchmarks.quality_vs_cpu --root=runs/scaling \
        --presets=ikonos,wv2,landsat8 --out=docs/images/quality_vs_cpu.png \
    [--networks=sigmoid,residual_norm,fusionnet,dicnn]

Reads the runs `benchmarks/presets.py` wrote at several step budgets, one
workdir per budget: ROOT/steps<N>/<preset>/<network>_s<seed>/ (its
eval/report.json and time.json). Prints, per preset, each network's mean
validation ERGAS and mean CPU seconds (user + system of the whole run,
compiles included) at each budget; for each run name of ours (--ours), its
ERGAS beside FusionNet's at the same CPU seconds and the CPU seconds at which
it draws level, both interpolated between measured budgets; and draws one
panel per preset: ERGAS against CPU seconds, one line per network through its
budgets.
"""

import collections
import glob
import json
import os
import re

from absl import app
from absl import flags
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pansharp_jax import curves

ROOT = flags.DEFINE_string("root", "runs/scaling", "Folder of the steps<N>/ workdirs.")
PRESETS = flags.DEFINE_list("presets", ["ikonos", "wv2", "landsat8"], "Presets.")
NETWORKS = flags.DEFINE_list("networks", [], "Run names to show (all if empty), "
                             "e.g. sigmoid,residual_norm,fusionnet,dicnn.")
OURS = flags.DEFINE_list("ours", ["tiny", "dim24", "small", "base"], "Runs of ours, "
                         "each set beside FusionNet at equal CPU seconds (dim24: "
                         "tiny at width 24, the round-3 default).")
OUT = flags.DEFINE_string("out", "docs/images/quality_vs_cpu.png", "Plot path.")

_PANEL, _BOX = (420, 330), (62, 34, 404, 290)
_COLOURS = ((31, 119, 180), (214, 39, 40), (255, 127, 14), (44, 160, 44),
            (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
            (188, 189, 34), (23, 190, 207))


def collect(root: str, preset: str) -> dict:
  """{network: {steps: (mean ERGAS, mean Q2n, mean CPU s, seeds)}}."""
  runs = collections.defaultdict(lambda: collections.defaultdict(list))
  for path in glob.glob(os.path.join(root, "steps*", preset, "*_s*",
                                     "eval", "report.json")):
    run = os.path.dirname(os.path.dirname(path))
    steps = int(re.search(r"steps(\d+)", run).group(1))
    network = re.sub(r"_s\d+$", "", os.path.basename(run))
    if NETWORKS.value and network not in NETWORKS.value:
      continue
    with open(path) as f:
      model = json.load(f)["mean"]["model"]
    with open(os.path.join(run, "time.json")) as f:
      cpu = json.load(f)["cpu"]
    runs[network][steps].append((model["ergas"], model["q2n"], cpu))
  return {net: {s: (*np.mean(v, 0), len(v)) for s, v in sorted(by.items())}
          for net, by in sorted(runs.items())}


def table(preset: str, result: dict) -> str:
  budgets = sorted({s for by in result.values() for s in by})
  lines = [f"\n### {preset}: ERGAS / Q2n (CPU s) at each step budget\n",
           "| network | " + " | ".join(f"{s} steps" for s in budgets) + " |",
           "|---|" + "---:|" * len(budgets)]
  for net, by in result.items():
    cells = [f"{by[s][0]:.3f} / {by[s][1]:.4f} ({by[s][2]:.0f})" if s in by
             else "-" for s in budgets]
    lines.append(f"| {net} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def ergas_at(by: dict, cpu: float) -> float | None:
  """A network's ERGAS at `cpu` seconds, linear in log CPU between the two
  budgets around it (a budget's own at its CPU, if the only one); None
  outside its measured range."""
  points = sorted((v[2], v[0]) for v in by.values())
  if len(points) == 1:
    return points[0][1] if points[0][0] == cpu else None
  for (c0, e0), (c1, e1) in zip(points, points[1:]):
    if c0 <= cpu <= c1:
      w = np.log(cpu / c0) / np.log(c1 / c0) if c1 > c0 else 0.0
      return float(e0 + w * (e1 - e0))
  return None


def shared_cpu(ours: dict, other: dict) -> tuple[float, float] | None:
  """The CPU seconds both networks' measured budgets span, or None."""
  lo = max(min(v[2] for v in by.values()) for by in (ours, other))
  hi = min(max(v[2] for v in by.values()) for by in (ours, other))
  return (lo, hi) if lo <= hi else None


def level_at(ours: dict, other: dict) -> float | None:
  """The fewest CPU seconds at which `ours`' ERGAS is at most `other`'s, both
  interpolated (ergas_at) over their shared CPU range; None if it never is."""
  span = shared_cpu(ours, other)
  if span is None:
    return None
  # Both curves are straight in log CPU between these knots, so is their gap.
  knots = sorted({*span, *(v[2] for by in (ours, other) for v in by.values()
                           if span[0] < v[2] < span[1])})
  gaps = [ergas_at(ours, c) - ergas_at(other, c) for c in knots]
  if gaps[0] <= 0:
    return knots[0]
  for c0, c1, g0, g1 in zip(knots, knots[1:], gaps, gaps[1:]):
    if g1 <= 0:
      return float(np.exp(np.log(c0) + g0 / (g0 - g1) * np.log(c1 / c0)))
  return None


def verdict(preset: str, result: dict, ours: str, other: str) -> str:
  """One line: where `ours` draws level with `other` at equal CPU seconds."""
  span = shared_cpu(result[ours], result[other])
  if span is None:
    return f"{preset}: {ours} and {other} have no CPU range in common"
  cpu = level_at(result[ours], result[other])
  if cpu is None:
    gaps = ", ".join(f"{ergas_at(result[ours], c) - ergas_at(result[other], c):+.3f}"
                     f" at {c:.0f} s" for c in sorted(set(span)))
    where = (f"at {span[0]:.0f}" if span[0] == span[1]
             else f"from {span[0]:.0f} to {span[1]:.0f}")
    return (f"{preset}: {ours} stays behind {other} {where} CPU s "
            f"(ERGAS {ours} - {other}: {gaps})")
  return (f"{preset}: {ours} reaches {other} at {cpu:.0f} CPU s, ERGAS "
          f"{ergas_at(result[ours], cpu):.3f} (interpolated, linear in log CPU "
          f"between budgets; shared range {span[0]:.0f}-{span[1]:.0f} s)")


def equal_cpu(preset: str, result: dict, ours: str, other: str) -> str:
  """Each budget of `ours` beside `other`'s ERGAS at the same CPU seconds."""
  lines = [f"\n### {preset}: {ours} against {other} at equal CPU seconds\n",
           f"| {ours} steps | CPU s | {ours} ERGAS | {other} ERGAS at that CPU | ahead |",
           "|---:|---:|---:|---:|---|"]
  for steps, (ergas, _, cpu, _) in result[ours].items():
    theirs = ergas_at(result[other], cpu)
    if theirs is not None:
      cell, ahead = f"{theirs:.3f}", ours if ergas <= theirs else other
    else:  # past its largest budget: what it reached with fewer CPU seconds
      cheaper = [v for v in result[other].values() if v[2] <= cpu]
      best = min(cheaper, default=None)
      cell = "-" if best is None else f"{best[0]:.3f} at {best[2]:.0f} s"
      # Worse than a cheaper run of theirs is a verdict; better is not, since
      # their curve may still fall over the CPU seconds not measured.
      ahead = (f"{other}, with less CPU" if best is not None and best[0] < ergas
               else "not measured at that CPU")
    lines.append(f"| {steps} | {cpu:.0f} | {ergas:.3f} | {cell} | {ahead} |")
  return "\n".join(lines)


def draw(results: dict) -> Image.Image:
  fonts = {k: ImageFont.load_default(size=s)
           for k, s in (("title", 15), ("tick", 12), ("label", 12))}
  canvas = Image.new("RGB", (_PANEL[0] * len(results), _PANEL[1] + 24), "white")
  pen = ImageDraw.Draw(canvas)
  networks = sorted({n for r in results.values() for n in r})
  colour = dict(zip(networks, _COLOURS))
  for i, (preset, result) in enumerate(results.items()):
    left = i * _PANEL[0]
    box = (left + _BOX[0], _BOX[1], left + _BOX[2], _BOX[3])
    points = np.array([(v[2], v[0]) for by in result.values() for v in by.values()])
    xlim = (0.0, float(points[:, 0].max()) * 1.08)
    axes = curves.Axes(box, xlim, curves.limits(points[:, 1]))
    curves.draw_grid(pen, axes, fonts)
    pen.text((left + _PANEL[0] / 2, 8), f"{preset}: val ERGAS vs CPU s",
             fill="black", font=fonts["title"], anchor="mt")
    for net, by in result.items():
      xy = [axes.px(v[2], v[0]) for v in by.values()]
      if len(xy) > 1:
        pen.line(xy, fill=colour[net], width=2)
      for x, y in xy:
        pen.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour[net])
  x = 8
  for net in networks:  # the legend
    pen.rectangle((x, _PANEL[1] + 6, x + 12, _PANEL[1] + 18), fill=colour[net])
    pen.text((x + 16, _PANEL[1] + 4), net, fill="black", font=fonts["tick"])
    x += 24 + int(pen.textlength(net, font=fonts["tick"]))
  return canvas


def main(argv):
  del argv
  results = {p: collect(ROOT.value, p) for p in PRESETS.value}
  results = {p: r for p, r in results.items() if r}
  for preset, result in results.items():
    print(table(preset, result))
    for ours in OURS.value:
      if ours in result and "fusionnet" in result:
        print(equal_cpu(preset, result, ours, "fusionnet"))
        print("\n" + verdict(preset, result, ours, "fusionnet"))
  os.makedirs(os.path.dirname(os.path.abspath(OUT.value)), exist_ok=True)
  draw(results).save(OUT.value, format="PNG")
  print(f"\nwrote {OUT.value}")


if __name__ == "__main__":
  app.run(main)
