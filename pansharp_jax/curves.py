"""Training curves as one PNG: validation PSNR and ERGAS against the step,
each classical baseline of a report as a labelled horizontal line, and the
train loss. Drawn with PIL, so plotting adds no dependency.

`write_curves(path, metrics_path, means, split)` reads WORKDIR/metrics.jsonl
(one JSON object per line with "step", "split" = "train" | "val" and the
values, as `train/logging.py` writes it) and a report's `mean`
({method: {metric: mean}}, the model under "model") scored on `split`. The
curves are always the validation ones; a report on another split (evaluate
--split=test) is drawn as lines for every method, the model's final weights
included, so test figures are never read as points of the validation curve.
A panel with nothing to show says so; a missing or partly written log is
not an error.
"""

import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MODEL = "model"
# (metric, split of metrics.jsonl, title); baselines are drawn on the first two.
PANELS = (("psnr", "val", "Validation PSNR (dB), higher is better"),
          ("ergas", "val", "Validation ERGAS, lower is better"),
          ("loss", "train", "Train loss"))
_PANEL_SIZE = (460, 330)
_MARGIN = (58, 34, 112, 40)  # left, top, right (baseline labels), bottom
_MODEL_COLOUR = (31, 119, 180)
_LINE_COLOURS = ((214, 39, 40), (255, 127, 14), (44, 160, 44),
                 (148, 103, 189), (140, 86, 75), (227, 119, 194),
                 (127, 127, 127))
_GRID, _AXIS, _TEXT = (230, 230, 230), (90, 90, 90), (20, 20, 20)


def read_metrics(path: str) -> dict[str, list[dict]]:
  """Rows of a metrics.jsonl by split; unreadable lines are skipped."""
  rows = {}
  if not os.path.exists(path):
    return rows
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:  # a line cut short by a stopped run
        continue
      rows.setdefault(row.get("split", "train"), []).append(row)
  return rows


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of `key`, finite values only, by step (the last row of
  a step wins: a resumed run logs its step again)."""
  by_step = {int(r["step"]): float(r[key]) for r in rows
             if isinstance(r.get(key), (int, float)) and "step" in r}
  steps = np.array(sorted(by_step), np.float64)
  values = np.array([by_step[s] for s in sorted(by_step)], np.float64)
  keep = np.isfinite(values)
  return steps[keep], values[keep]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
  """Round tick values (1, 2, 2.5 or 5 times a power of ten) in [low, high]."""
  if not high > low:
    return [low]
  raw = (high - low) / max(count - 1, 1)
  power = 10.0 ** math.floor(math.log10(raw))
  step = power * min((1, 2, 2.5, 5, 10),
                     key=lambda m: abs(math.log(m * power / raw)))
  first = math.ceil(low / step - 1e-9) * step
  return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def spread(positions: list[float], gap: float, low: float,
           high: float) -> list[float]:
  """Moves label positions apart to at least `gap`, inside [low, high],
  keeping their order and staying as close as they can to where they were."""
  order = sorted(range(len(positions)), key=lambda i: positions[i])
  placed = [positions[i] for i in order]
  for k in range(len(placed)):  # push down past the previous label
    placed[k] = max(placed[k], low if k == 0 else placed[k - 1] + gap)
  for k in reversed(range(len(placed))):  # then back up from the bottom
    placed[k] = min(placed[k], high if k == len(placed) - 1
                    else placed[k + 1] - gap)
  out = [0.0] * len(positions)
  for k, i in enumerate(order):
    out[i] = placed[k]
  return out


class Axes:
  """Data -> pixel mapping of one panel's plotting box."""

  def __init__(self, box, xlim, ylim):
    self.box, self.xlim, self.ylim = box, xlim, ylim

  def px(self, x, y):
    (x0, y0, x1, y1), (a, b), (c, d) = self.box, self.xlim, self.ylim
    return (x0 + (x - a) / (b - a) * (x1 - x0),
            y1 - (y - c) / (d - c) * (y1 - y0))


def limits(values, pad=0.08):
  lo, hi = float(np.min(values)), float(np.max(values))
  span = hi - lo or abs(hi) * 0.1 or 1.0
  return lo - pad * span, hi + pad * span


def draw_grid(draw, axes, fonts):
  """Grid, tick labels and the frame of a panel."""
  (x0, y0, x1, y1) = axes.box
  for axis, lim in (("x", axes.xlim), ("y", axes.ylim)):
    for t in nice_ticks(*lim):
      if axis == "x":
        x, _ = axes.px(t, axes.ylim[0])
        draw.line([(x, y0), (x, y1)], fill=_GRID)
        draw.text((x, y1 + 4), f"{round(t, 9):g}", fill=_TEXT,
                  font=fonts["tick"], anchor="mt")
      else:
        _, y = axes.px(axes.xlim[0], t)
        draw.line([(x0, y), (x1, y)], fill=_GRID)
        draw.text((x0 - 5, y), f"{round(t, 9):g}", fill=_TEXT,
                  font=fonts["tick"], anchor="rm")
  draw.rectangle(axes.box, outline=_AXIS)


def _draw_panel(draw, origin, title, curve, lines, fonts, curve_label=MODEL):
  """One panel at `origin`: the model's curve (its last value labelled
  `curve_label`) and labelled horizontal lines [(label, value, colour)]."""
  left, top, right, bottom = _MARGIN
  ox, oy = origin
  box = (ox + left, oy + top, ox + _PANEL_SIZE[0] - right,
         oy + _PANEL_SIZE[1] - bottom)
  draw.text((ox + left, oy + 8), title, fill=_TEXT, font=fonts["title"])
  steps, values = curve
  if not len(steps):
    draw.rectangle(box, outline=_AXIS)
    draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), "no data yet",
              fill=_AXIS, font=fonts["tick"], anchor="mm")
    return
  xlim = (0.0, float(steps.max()) or 1.0)
  axes = Axes(box, xlim, limits(np.concatenate([values, [v for _, v, _ in lines]])))
  draw_grid(draw, axes, fonts)
  draw.text(((box[0] + box[2]) / 2, box[3] + 20), "step", fill=_TEXT,
            font=fonts["tick"], anchor="mt")
  for _, value, colour in lines:
    y = axes.px(0, value)[1]
    draw.line([(box[0], y), (box[2], y)], fill=colour, width=1)
  points = [axes.px(s, v) for s, v in zip(steps, values)]
  if len(points) > 1:
    draw.line(points, fill=_MODEL_COLOUR, width=3, joint="curve")
  for x, y in points:
    draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=_MODEL_COLOUR)
  # Labels right of the box, the model's last value among the lines'.
  labels = [(curve_label, values[-1], _MODEL_COLOUR)] + list(lines)
  placed = spread([axes.px(0, v)[1] for _, v, _ in labels],
                  fonts["label"].size + 2, box[1], box[3])
  for (label, value, colour), y in zip(labels, placed):
    draw.text((box[2] + 4, y), f"{label} {value:.4g}", fill=colour,
              font=fonts["label"], anchor="lm")


def _lines(means: dict, metric: str, split: str) -> list:
  """(label, value, colour) of each method of `means` with a finite
  `metric`: the baselines, and the model too where `means` is not the
  validation split's (its curve already shows that)."""
  colours = iter(_LINE_COLOURS)
  lines = []
  for method, values in means.items():
    value = values.get(metric)
    if (method == MODEL and split == "val") or not isinstance(value, (int, float)):
      continue
    colour = _MODEL_COLOUR if method == MODEL else next(colours, _AXIS)
    if math.isfinite(value):
      lines.append((method, value, colour))
  return lines


def render(rows: dict[str, list[dict]], means: dict, split: str = "val") -> Image.Image:
  """The panels side by side: the model's curves from `rows` (read_metrics)
  and the methods of `means`, scored on `split`, as lines on the metric
  panels."""
  fonts = {"title": ImageFont.load_default(size=15),
           "tick": ImageFont.load_default(size=12),
           "label": ImageFont.load_default(size=12)}
  canvas = Image.new("RGB", (_PANEL_SIZE[0] * len(PANELS), _PANEL_SIZE[1] + 24),
                     (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for i, (metric, panel_split, title) in enumerate(PANELS):
    lines = _lines(means, metric, split) if panel_split == "val" else []
    _draw_panel(draw, (i * _PANEL_SIZE[0], 0), title,
                _series(rows.get(panel_split, []), metric), lines, fonts,
                MODEL if split == "val" else panel_split)
  note = ("blue: the model (EMA weights); horizontal lines: classical methods "
          "on the same images" if split == "val" else
          f"blue curve: the model on the validation images during training; "
          f"horizontal lines: each method on the {split} images, the model's "
          f"final weights in blue")
  draw.text((8, _PANEL_SIZE[1] + 4), note, fill=_AXIS, font=fonts["tick"])
  return canvas


def write_curves(path: str, metrics_path: str, means: dict,
                 split: str = "val") -> str:
  """Writes the curves PNG to `path` (folders created); returns the path."""
  image = render(read_metrics(metrics_path), means, split)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image.save(path, format="PNG")
  return str(path)
