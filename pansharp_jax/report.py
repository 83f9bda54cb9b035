"""Evaluation reports: per-image metrics and their summaries, JSON + Markdown.

Input is `rows_by_method`: for each method (the model, "EXP", "GS", ...) a
list with one dict per image of metric name -> float, as returned by
`metrics.evaluate_reduced` / `evaluate_full`, optionally with a string
"name" identifying the image. Summaries are mean, std (ddof 1), min and max
over the images. Non-finite values (a perfect image's PSNR) are written to
JSON as null, so the file is strict JSON.
"""

import json
import math
import os

import numpy as np

# Metric -> (label, higher is better), in display order.
METRICS = {
    "psnr": ("PSNR", True),
    "ssim": ("SSIM", True),
    "sam": ("SAM", False),
    "ergas": ("ERGAS", False),
    "q": ("Q", True),
    "q2n": ("Q2n", True),
    "scc": ("SCC", True),
    "d_lambda": ("D_λ", False),
    "d_s": ("D_s", False),
    "qnr": ("QNR", True),
    "d_lambda_khan": ("D_λ(K)", False),
    "hqnr": ("HQNR", True),
}
_DECIMALS = {"psnr": 2, "sam": 3, "ergas": 3}  # others: 4


def _metric_names(rows: list[dict]) -> list[str]:
  """Numeric keys of the rows, in first-seen order."""
  names = {}
  for row in rows:
    names.update({k: None for k, v in row.items()
                  if isinstance(v, (int, float, np.number))
                  and not isinstance(v, bool)})
  return list(names)


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
  """{metric: {mean, std, min, max, n}} over the images in `rows`.

  std is the sample standard deviation (ddof 1); None for a single image.
  """
  summary = {}
  for name in _metric_names(rows):
    values = np.array([r[name] for r in rows if name in r], np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in the std of an inf PSNR
      std = float(values.std(ddof=1)) if len(values) > 1 else None
    summary[name] = {
        "mean": float(values.mean()),
        "std": std,
        "min": float(values.min()),
        "max": float(values.max()),
        "n": len(values),
    }
  return summary


def json_safe(obj):
  """Replaces non-finite floats by None, numpy scalars by Python ones."""
  if isinstance(obj, dict):
    return {k: json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if isinstance(obj, np.generic):
    obj = obj.item()
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def fmt(name: str, value) -> str:
  if value is None:
    return "–"
  return f"{value:.{_DECIMALS.get(name, 4)}f}"


def best_methods(summaries: dict, name: str) -> set[str]:
  """Methods with the best mean of `name` (none if only one method has it)."""
  means = {m: s[name]["mean"] for m, s in summaries.items()
           if name in s and s[name]["mean"] is not None
           and not math.isnan(s[name]["mean"])}
  if len(means) < 2:
    return set()
  higher = METRICS.get(name, (name, True))[1]
  best = max(means.values()) if higher else min(means.values())
  return {m for m, v in means.items() if v == best}


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  return lines + ["| " + " | ".join(r) + " |" for r in rows]


def ordered(names) -> list[str]:
  """Metric names in display order (METRICS first, others after)."""
  return sorted(names, key=lambda n: list(METRICS).index(n) if n in METRICS
                else len(METRICS))


def label(name: str, arrow: bool = True) -> str:
  """A metric's column label, with its better direction."""
  text, higher = METRICS.get(name, (name, None))
  if arrow and higher is not None:
    text += " ↑" if higher else " ↓"
  return text


def summary_table(summaries: dict, names: list[str],
                  first_column: str = "Method") -> list[str]:
  """Markdown rows of mean ± std per method (summaries as `summarize`
  gives them, one per method), the best mean of each column in bold."""
  best = {n: best_methods(summaries, n) for n in names}
  body = []
  for method, summary in summaries.items():
    cells = []
    for n in names:
      if n not in summary:
        cells.append("–")
        continue
      s = summary[n]
      cell = fmt(n, s["mean"]) + ("" if s["std"] is None
                                   else f" ± {fmt(n, s['std'])}")
      cells.append(f"**{cell}**" if method in best[n] else cell)
    body.append([method] + cells)
  return markdown_table([first_column] + [label(n) for n in names], body)


def to_markdown(rows_by_method: dict[str, list[dict]], summaries: dict,
                title: str = "Evaluation report",
                extra: dict | None = None) -> str:
  """The report as Markdown: summary, range and per-image tables."""
  names = ordered(_metric_names(
      [r for rows in rows_by_method.values() for r in rows]))
  lines = [f"# {title}", ""]
  lines += [f"- {k}: {v}" for k, v in (extra or {}).items()]
  counts = sorted({len(rows) for rows in rows_by_method.values()})
  lines += ["", f"## Mean ± std over {'/'.join(map(str, counts))} images", ""]
  lines += summary_table(summaries, names)

  lines += ["", "## Min – max", ""]
  body = [[method] + [f"{fmt(n, s[n]['min'])} – {fmt(n, s[n]['max'])}"
                      if n in s else "–" for n in names]
          for method, s in summaries.items()]
  lines += markdown_table(["Method"] + [label(n, False) for n in names], body)

  lines += ["", "## Per image"]
  for method, rows in rows_by_method.items():
    body = [[str(r.get("name", i))] + [fmt(n, r[n]) if n in r else "–"
                                       for n in names]
            for i, r in enumerate(rows)]
    lines += ["", f"### {method}", ""]
    lines += markdown_table(["Image"] + [label(n, False) for n in names], body)
  return "\n".join(lines) + "\n"


def write_report(rows_by_method: dict[str, list[dict]], out_dir: str, *,
                 extra: dict | None = None, name: str = "report",
                 title: str = "Evaluation report") -> dict:
  """Writes `out_dir/{name}.json` and `out_dir/{name}.md`; returns the report.

  The JSON holds `mean` ({method: {metric: mean}}, the headline numbers),
  `summary` ({method: summarize(rows)}: mean, std, min, max, n), `per_image`
  (the rows) and the items of `extra` (e.g. step, split).
  """
  rows_by_method = {m: rows for m, rows in rows_by_method.items() if rows}
  summaries = {m: summarize(rows) for m, rows in rows_by_method.items()}
  means = {m: {k: s["mean"] for k, s in summary.items()}
           for m, summary in summaries.items()}
  report = json_safe({"mean": means, "summary": summaries,
                       "per_image": rows_by_method, **(extra or {})})
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
    json.dump(report, f, indent=2, allow_nan=False)
  with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
    f.write(to_markdown(rows_by_method, summaries, title, extra))
  return report
