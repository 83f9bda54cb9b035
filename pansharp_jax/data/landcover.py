"""Land-cover layouts of the synthetic scenes: which material is where.

A layout is drawn on the scene's finest grid (the PAN's) as per-pixel
weights over `spectra.COMPONENTS` and a sunlit fraction (1: full sun, 0:
skylight only), from these parts, painted in order:

* parcels: strips across the scene at one orientation, cut into fields; each
  gets a land use (crop, grass, bare soil, forest, built-up) by the scene's
  kind (rural, suburban, urban);
* textures at several scales: crop rows, vigour and moisture patches;
* buildings on a lattice inside built-up parcels, roofs of four materials,
  pitched roofs darker on the side away from the sun;
* roads along parcel edges, sometimes a meandering river or a lake;
* tree crowns (forests, hedgerows, river banks, gardens), shaded as domes;
* shadows of buildings and trees cast away from the sun.

Sizes are in fine pixels (a quarter of an MS pixel at ratio 4).
"""

import dataclasses

import numpy as np

from pansharp_jax.data import spectra

_K = spectra.INDEX
_KINDS = ("rural", "suburban", "urban")
_USES = ("crop", "grass", "soil", "forest", "built")
# Land-use probabilities, parcel sizes (px) and road chances by scene kind.
_USE_PROBS = {"rural": (.45, .23, .12, .16, .04),
              "suburban": (.10, .18, .05, .14, .53),
              "urban": (0, .08, 0, .07, .85)}
_PARCEL_PX = {"rural": (50, 130), "suburban": (40, 95), "urban": (32, 75)}
_ROAD_CHANCE = {"rural": (.5, .15), "suburban": (.85, .5), "urban": (1, .8)}
_ROOFS = ("red_roof", "concrete", "metal_roof", "dark_roof")


@dataclasses.dataclass
class Layout:
  weights: np.ndarray  # (components, n, n): how much of each component
  sunlit: np.ndarray   # (n, n): 1 in full sun, 0 in shadow


@dataclasses.dataclass(frozen=True)
class _Frame:
  """Pixel coordinates, the scene's rotated axes and the sun."""
  y: np.ndarray
  x: np.ndarray
  u: np.ndarray             # across the parcel strips
  v: np.ndarray             # along them
  sun: tuple[float, float]  # unit (dy, dx) towards the sun
  sun_uv: tuple[float, float]  # the same along u and v
  sun_tan: float            # tangent of the sun's elevation


def _frame(rng, n):
  y, x = np.mgrid[0:n, 0:n].astype(np.float32) - n / 2
  # Half the scenes keep their parcels near the image axes, as many do.
  angle = (rng.choice([0, np.pi / 2]) + rng.normal(0, 0.08)
           if rng.random() < 0.5 else rng.uniform(0, np.pi))
  cos, sin = np.cos(angle), np.sin(angle)
  azimuth = rng.uniform(0, 2 * np.pi)
  dy, dx = np.sin(azimuth), np.cos(azimuth)
  return _Frame(y, x, x * cos + y * sin, -x * sin + y * cos, (dy, dx),
                (dx * cos + dy * sin, -dx * sin + dy * cos),
                float(np.tan(np.radians(rng.uniform(35, 65)))))


def _field(rng, n, sigmas):
  """Zero-mean, unit-std Gaussian random field with structure at each scale
  in `sigmas` (px), the scales weighted equally; made in one FFT."""
  f2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None] ** 2
  transfer = 0.0
  for sigma in np.atleast_1d(sigmas):
    one = np.exp(-2 * (np.pi * sigma) ** 2 * f2)
    transfer = transfer + one / np.sqrt(np.mean(one**2))
  noise = rng.standard_normal((n, n)).astype(np.float32)
  field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(n, n))
  return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _coverage(half_width, distance):
  """Antialiased share of a pixel within `half_width` of a line or edge."""
  return np.clip(half_width - distance + 0.5, 0.0, 1.0)


def _paint(weights, coverage, parts):
  """Covers `coverage` of each pixel with `parts` {component: amount}."""
  weights *= 1.0 - coverage
  for name, amount in parts.items():
    weights[_K[name]] += coverage * amount


def _cuts(rng, span, low, high):
  """Cut positions across [-span, span], gaps drawn in [low, high]."""
  cuts = [-span - rng.uniform(0, high)]
  while cuts[-1] < span:
    cuts.append(cuts[-1] + rng.uniform(low, high))
  return np.asarray(cuts, np.float32)


def _nearest_cut(coord, cuts):
  """Index of the interval of `coord` among `cuts`, the distance to its
  nearest cut and that cut's index."""
  k = np.clip(np.searchsorted(cuts, coord), 1, len(cuts) - 1)
  below, above = coord - cuts[k - 1], cuts[k] - coord
  return k, np.minimum(below, above), np.where(below < above, k - 1, k)


def _parcels(rng, frame, kind):
  """Parcel labels (n, n) and, per pixel, the distance to the nearest parcel
  edge and that edge's road half width (0: no road)."""
  low, high = _PARCEL_PX[kind]
  span = 0.75 * frame.u.shape[0]
  main_road, minor_road = _ROAD_CHANCE[kind]
  u_cuts = _cuts(rng, span, low, high)
  strip, dist, cut = _nearest_cut(frame.u, u_cuts)
  half_width = _road_widths(rng, len(u_cuts), main_road, (2.5, 4.5))[cut]
  labels = np.zeros(frame.u.shape, np.int64)
  for s in np.unique(strip):
    inside = strip == s
    v_cuts = _cuts(rng, span, low, high)
    part, v_dist, v_cut = _nearest_cut(frame.v[inside], v_cuts)
    labels[inside] = s * 1000 + part
    minor = _road_widths(rng, len(v_cuts), minor_road, (1.5, 3))
    closer = v_dist < dist[inside]
    dist[inside] = np.where(closer, v_dist, dist[inside])
    half_width[inside] = np.where(closer, minor[v_cut], half_width[inside])
  labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
  return labels, dist, half_width


def _road_widths(rng, count, chance, widths):
  """Half widths of `count` cuts: a road with probability `chance`, else 0."""
  return (rng.random(count) < chance) * rng.uniform(*widths, count)


def _crop(rng, frame, labels, count):
  """Crop parcels: rows (seen by the PAN only, 3-7 px apart) of a per-field
  crop over soil, with vigour patches. Returns {component: amount}."""
  along_u = rng.random(count) < 0.5
  period = rng.uniform(3, 7, count)[labels]
  coord = np.where(along_u[labels], frame.u, frame.v)
  rows = 0.5 + 0.5 * np.cos(2 * np.pi * coord / period)
  cover = rng.uniform(0.3, 1.0, count)[labels]
  vigour = np.clip(0.85 + 0.2 * _field(rng, frame.u.shape[0], (2, 8, 32)), 0, 1)
  plant = vigour * (cover + (1 - cover) * rows)
  kind = rng.choice(["crop", "grass", "dry_vegetation"], count, p=[.5, .2, .3])
  parts = {name: plant * (kind[labels] == name) for name in set(kind)}
  parts["soil"] = 1 - plant
  return parts


def _ground(rng, n, first, second, mean, spread, sigmas=(2, 8, 32)):
  """A patchy mix of two materials: `second`'s share ~ mean +- spread."""
  share = np.clip(mean + spread * _field(rng, n, sigmas), 0, 1)
  return {first: 1 - share, second: share}


def _buildings(rng, frame, kind):
  """Building footprints on a lattice: coverage, height (px) and roof
  sunlit share (pitched roofs: 0.65 on the side away from the sun), plus
  the roof material of each pixel."""
  cell = rng.uniform(*((26, 44) if kind == "urban" else (16, 28)))
  table = 64  # per-cell parameters, looked up modulo the table size
  offset_u, offset_v = rng.uniform(0, cell, 2)
  iu = np.floor((frame.u - offset_u) / cell).astype(np.int64)
  iv = np.floor((frame.v - offset_v) / cell).astype(np.int64)
  idx = (np.mod(iu, table), np.mod(iv, table))

  def draw(low, high):
    return rng.uniform(low, high, (table, table))[idx]

  lu = frame.u - offset_u - (iu + 0.5 + draw(-0.1, 0.1)) * cell
  lv = frame.v - offset_v - (iv + 0.5 + draw(-0.1, 0.1)) * cell
  half_u, half_v = draw(0.22, 0.4) * cell, draw(0.22, 0.4) * cell
  present = draw(0, 1) < 0.85
  cover = (present * _coverage(half_u, np.abs(lu)) *
           _coverage(half_v, np.abs(lv)))
  height = draw(*((6, 18) if kind == "urban" else (3, 8))) * (cover > 0.5)
  roof = rng.choice(len(_ROOFS), (table, table), p=[.35, .3, .15, .2])[idx]
  # A pitched roof's ridge runs along its longer side; the half facing
  # away from the sun gets less direct light.
  ridge_along_v = half_u < half_v
  across = np.where(ridge_along_v, lu, lv)
  sun_across = np.where(ridge_along_v, frame.sun_uv[0], frame.sun_uv[1])
  lit = np.where((roof == 0) & (across * sun_across < 0), 0.65, 1.0)
  return cover, height, lit, roof


def _river(rng, frame):
  """A meandering river: water coverage and a wooded bank band (bool)."""
  n = frame.y.shape[0]
  heading = rng.uniform(0, np.pi)
  along = frame.x * np.cos(heading) + frame.y * np.sin(heading)
  across = -frame.x * np.sin(heading) + frame.y * np.cos(heading)
  amp, wavelength, phase = (rng.uniform(0.03, 0.12, 2) * n,
                            rng.uniform(0.5, 1.5, 2) * n,
                            rng.uniform(0, 2 * np.pi, 2))
  arg = 2 * np.pi * along[..., None] / wavelength + phase
  centre = rng.uniform(-0.3, 0.3) * n + (amp * np.sin(arg)).sum(-1)
  slope = (amp * 2 * np.pi / wavelength * np.cos(arg)).sum(-1)
  dist = np.abs(across - centre) / np.sqrt(1 + slope**2)
  half_width = rng.uniform(4, 10) * (1 + 0.2 * np.sin(arg[..., 0] * 3))
  return _coverage(half_width, dist), dist < half_width + rng.uniform(3, 9)


def _crowns(rng, frame, density):
  """Tree crowns on a jittered lattice where `density` (at the crown's
  centre) allows: crown height (0-1, domes), and the sunlit share of each
  crown pixel (Lambertian on the dome, relative to flat ground)."""
  n, spacing = frame.y.shape[0], 7.0
  cells = int(np.ceil(n / spacing)) + 2
  lattice = (np.arange(cells, dtype=np.float32) - 1) * spacing
  cy = lattice[:, None] + rng.uniform(0.1, 0.9, (cells, cells)) * spacing
  cx = lattice[None] + rng.uniform(0.1, 0.9, (cells, cells)) * spacing
  at = (np.clip(cy, 0, n - 1).astype(int), np.clip(cx, 0, n - 1).astype(int))
  # 1 / radius, zero where no crown grows: such domes are never above 0.
  inv_radius = (rng.random((cells, cells)) < density[at]) / rng.uniform(
      2.5, 5.0, (cells, cells))
  cy, cx, inv_radius = (a.astype(np.float32) for a in (cy, cx, inv_radius))
  y, x = frame.y + n / 2, frame.x + n / 2
  iy, ix = (y // spacing).astype(int) + 1, (x // spacing).astype(int) + 1
  height = np.zeros((n, n), np.float32)
  slope_y, slope_x = np.zeros((n, n), np.float32), np.zeros((n, n), np.float32)
  for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
      k = (iy + dy, ix + dx)
      ny, nx = (y - cy[k]) * inv_radius[k], (x - cx[k]) * inv_radius[k]
      dome = np.sqrt(np.clip(1 - ny**2 - nx**2, 0, None))
      dome = np.where(inv_radius[k] > 0, dome, 0)
      higher = dome > height
      slope_y = np.where(higher, ny, slope_y)
      slope_x = np.where(higher, nx, slope_x)
      height = np.maximum(height, dome)
  # cos(normal, sun) / cos(vertical, sun), the unit normal being (ny, nx, dome).
  towards = (slope_y * frame.sun[0] + slope_x * frame.sun[1]) / frame.sun_tan
  return height, np.clip(towards + height, 0, 1.2)


def _cast_shadows(height, frame):
  """Pixels whose ray towards the sun passes below something taller."""
  n = height.shape[0]
  padded = np.pad(height, n)
  shadow = np.zeros((n, n), bool)
  for step in range(1, int(np.ceil(height.max() / frame.sun_tan)) + 1):
    oy, ox = (int(round(step * d)) for d in frame.sun)
    ahead = padded[n + oy:2 * n + oy, n + ox:2 * n + ox]
    shadow |= ahead > height + step * frame.sun_tan
  return shadow


def _ground_mixes(rng, frame, labels, count, kind):
  """{land use: callable giving its ground mix {component: amount}}."""
  n = frame.y.shape[0]
  built = (("concrete", "asphalt", .4, .3) if kind == "urban"
           else ("grass", "concrete", .25, .2))
  return {
      "crop": lambda: _crop(rng, frame, labels, count),
      "grass": lambda: _ground(rng, n, "grass", "dry_vegetation", .3, .3),
      "soil": lambda: _ground(rng, n, "soil", "sand", .3, .3),
      "forest": lambda: _ground(rng, n, "grass", "soil", .2, .2),
      "built": lambda: _ground(rng, n, *built),
  }


def _tree_density(rng, use, kind, edge_dist, road_half, bank):
  """Chance of a crown per place: forests, gardens, hedgerows, banks."""
  density = np.choose(use, [0.0, 0.02, 0.0, 0.9,
                            0.0 if kind == "urban" else 0.22])
  if kind == "rural" and rng.random() < 0.6:
    density = np.where((road_half == 0) & (edge_dist < 3), 0.8, density)
  return np.where(bank, 0.75, density)


def _paint_ground(rng, frame, kind, weights):
  """Parcels with their land use's ground; returns (labels, use, edge
  distance, road half width) per pixel."""
  labels, edge_dist, road_half = _parcels(rng, frame, kind)
  count = int(labels.max()) + 1
  use = rng.choice(len(_USES), count, p=_USE_PROBS[kind])[labels]
  mixes = _ground_mixes(rng, frame, labels, count, kind)
  for i, mix in enumerate(mixes.values()):
    if (use == i).any():
      _paint(weights, (use == i).astype(np.float32), mix())
  weights *= rng.uniform(0.9, 1.1, count)[labels]
  return use, edge_dist, road_half


def _paint_buildings(rng, frame, kind, use, weights):
  """Buildings on the built-up parcels; returns (height, sunlit share)."""
  n = frame.y.shape[0]
  built = use == _USES.index("built")
  if not built.any():
    return np.zeros((n, n), np.float32), np.ones((n, n), np.float32)
  cover, height, roof_lit, roof = _buildings(rng, frame, kind)
  cover = cover * built
  _paint(weights, cover, {m: roof == i for i, m in enumerate(_ROOFS)})
  return height * built, np.where(cover > 0.5, roof_lit, 1.0)


def _paint_water_and_roads(rng, frame, kind, edge_dist, road_half, weights):
  """A river or lake, then roads over them (bridges); returns (where the
  ground is open, the river's wooded banks)."""
  n = frame.y.shape[0]
  water, bank = np.zeros((n, n), np.float32), np.zeros((n, n), bool)
  if rng.random() < (0.4 if kind == "rural" else 0.15):
    water, bank = _river(rng, frame)
  if rng.random() < 0.12:
    water = np.maximum(water, np.clip(8 * (_field(rng, n, n / 8) - 1.2), 0, 1))
  _paint(weights, water, _ground(rng, n, "water", "turbid_water",
                                 rng.uniform(0.1, 0.9), 0.2, (16, 48)))
  roads = _coverage(road_half, edge_dist) * (road_half > 0)
  paved = kind != "rural" or rng.random() < 0.5
  _paint(weights, roads, {"asphalt": 1.0} if paved else
         _ground(rng, n, "soil", "sand", .5, .2))
  return (water < 0.5) & (roads < 0.5), bank


def _paint_trees(rng, frame, density, weights):
  """Tree crowns where `density` allows; returns (height, sunlit share,
  crown) of the trees."""
  crown, lit = _crowns(rng, frame, density)
  _paint(weights, np.clip(4 * crown, 0, 1), {"tree": 1.0})
  height = rng.uniform(4, 9) * (0.6 + 0.4 * crown) * (crown > 0)
  return height, lit, crown > 0


def draw_layout(rng: np.random.Generator, n: int) -> Layout:
  """The layout of one (n, n) scene, a pure function of `rng`'s state."""
  frame = _frame(rng, n)
  kind = _KINDS[rng.choice(len(_KINDS), p=(.45, .35, .2))]
  weights = np.zeros((len(spectra.COMPONENTS), n, n), np.float32)
  use, edge_dist, road_half = _paint_ground(rng, frame, kind, weights)
  height, lit = _paint_buildings(rng, frame, kind, use, weights)
  open_ground, bank = _paint_water_and_roads(rng, frame, kind, edge_dist,
                                             road_half, weights)
  height, lit = height * open_ground, np.where(open_ground, lit, 1.0)
  density = _tree_density(rng, use, kind, edge_dist, road_half, bank)
  tree_height, tree_lit, trees = _paint_trees(
      rng, frame, density * open_ground * (height == 0), weights)
  height = np.maximum(height, tree_height)
  lit = np.where(trees, tree_lit, lit)

  vegetation = sum(weights[_K[m]] for m in ("tree", "crop", "grass"))
  weights[_K[spectra.RED_EDGE]] = vegetation * np.clip(
      0.5 * _field(rng, n, (4, 16)), -1, 1)
  weights *= 1 + 0.04 * _field(rng, n, 0.7)  # surface roughness
  return Layout(weights, np.where(_cast_shadows(height, frame), 0.0, lit))
