"""Material spectra and sensor spectral responses of the synthetic scenes.

Reflectances are coarse curves in [0, 1] at a few wavelengths from 400 to
1000 nm, drawn after the shapes of library spectra: green vegetation's
chlorophyll dip and red edge, soil's slow rise, water's near-infrared
absorption, the flat grey of concrete and asphalt. MS bands are Gaussian
responses placed like a real sensor's (QuickBird for 4 bands, WorldView-3 for
8, or a sensor preset's edges: `presets.py`); the PAN response is a broad
plateau, so it also sees wavelengths no MS
band covers (the red edge, the gaps between bands): on vegetation, water and
shadows the PAN is not a linear mix of the MS bands, as on real sensors.

Everything here is (channels, wavelengths) arithmetic; the scene layout is
`landcover.py`'s job.
"""

import numpy as np

WAVELENGTHS = np.arange(400.0, 1001.0, 10.0)  # nm, the integration grid
_KNOTS = (400, 450, 500, 550, 600, 650, 680, 710, 740, 800, 900, 1000)

# Reflectance at _KNOTS, per material (rows in this order).
_REFLECTANCE = {
    "tree": (.03, .04, .05, .09, .06, .04, .04, .15, .38, .45, .46, .44),
    "crop": (.03, .05, .06, .12, .08, .05, .05, .20, .45, .55, .56, .54),
    "grass": (.04, .05, .07, .11, .09, .07, .07, .17, .33, .38, .40, .39),
    "dry_vegetation": (.06, .08, .11, .15, .19, .22, .23, .25, .27, .30, .32,
                       .33),
    "soil": (.05, .07, .09, .12, .16, .19, .21, .22, .24, .27, .30, .32),
    "sand": (.14, .19, .24, .29, .33, .36, .37, .39, .40, .42, .44, .45),
    "water": (.05, .06, .06, .05, .035, .025, .02, .015, .01, .007, .005,
              .004),
    "turbid_water": (.06, .08, .10, .12, .11, .09, .08, .06, .045, .03, .02,
                     .015),
    "asphalt": (.05, .06, .065, .07, .075, .08, .082, .085, .088, .095, .10,
                .11),
    "concrete": (.18, .23, .27, .29, .30, .31, .31, .32, .32, .33, .34, .34),
    "red_roof": (.06, .06, .07, .09, .17, .28, .31, .33, .35, .38, .41, .43),
    "metal_roof": (.30, .33, .34, .34, .33, .33, .32, .32, .32, .31, .31,
                   .30),
    "dark_roof": (.04, .045, .05, .05, .055, .055, .055, .06, .06, .065, .07,
                  .07),
}
MATERIALS = tuple(_REFLECTANCE)

# A vegetation pixel's red edge moves with its chlorophyll: this component
# (the tree curve's slope over 680-770 nm times a shift in nm) is added with
# a per-pixel weight in [-1, 1] on vegetation. Only the PAN and a red-edge
# band see it.
RED_EDGE = "red_edge_shift"
_RED_EDGE_SHIFT_NM = 12.0
COMPONENTS = MATERIALS + (RED_EDGE,)
INDEX = {name: i for i, name in enumerate(COMPONENTS)}

# Band edges (nm, half-power points) by band count: RGB, QuickBird and
# WorldView-3; other counts split 450-900 nm evenly.
_BAND_EDGES = {
    3: ((450, 510), (520, 600), (630, 690)),
    4: ((450, 520), (520, 600), (630, 690), (760, 900)),
    8: ((400, 450), (450, 510), (510, 580), (585, 625), (630, 690),
        (705, 745), (770, 895), (860, 1040)),
}


def reflectance() -> np.ndarray:
  """(components, wavelengths): every material's reflectance, then the red
  edge shift."""
  curves = np.stack([np.interp(WAVELENGTHS, _KNOTS, r)
                     for r in _REFLECTANCE.values()])
  in_edge = (WAVELENGTHS >= 680) & (WAVELENGTHS <= 770)
  shift = -np.gradient(curves[INDEX["tree"]], WAVELENGTHS) * in_edge
  return np.concatenate([curves, _RED_EDGE_SHIFT_NM * shift[None]])


def _flat_top_band(low, high):
  """A band with steep sides (a super-Gaussian), half power at its edges."""
  centre, half = (low + high) / 2, (high - low) / 2
  return np.exp(-np.log(2) * np.abs((WAVELENGTHS - centre) / half) ** 6)


def band_responses(num_bands: int, edges=()) -> np.ndarray:
  """(num_bands, wavelengths) MS responses, each summing to 1; `edges`
  ((low, high) nm per band, a sensor preset's) or the defaults below."""
  edges = edges or _BAND_EDGES.get(num_bands)
  if edges is None:
    bounds = np.linspace(450, 900, num_bands + 1)
    edges = list(zip(bounds[:-1], bounds[1:] - 10))
  responses = np.stack([_flat_top_band(lo, hi) for lo, hi in edges])
  return responses / responses.sum(1, keepdims=True)


def pan_response(num_bands: int, edges=()) -> np.ndarray:
  """(wavelengths,) PAN response summing to 1: a plateau with soft edges,
  from `edges` (low, high nm) or 450-900 nm (450-800 nm for the 8-band
  WorldView-3-like set)."""
  low, high = edges or (450.0, 800.0 if num_bands == 8 else 900.0)
  plateau = (1 / (1 + np.exp(-(WAVELENGTHS - low) / 12)) *
             1 / (1 + np.exp((WAVELENGTHS - high) / 12)))
  return plateau / plateau.sum()


def skylight() -> np.ndarray:
  """Irradiance in shadow relative to full sun, per wavelength: diffuse sky
  light only, stronger in the blue (Rayleigh scattering)."""
  return 0.04 + 0.26 * (450.0 / WAVELENGTHS) ** 3


def path_radiance() -> np.ndarray:
  """Relative haze radiance added to every pixel, strongest in the blue."""
  return (450.0 / WAVELENGTHS) ** 4


def sensor_channels(num_bands: int, band_edges=(), pan_edges=()) -> np.ndarray:
  """(num_bands + 1, wavelengths): the MS responses, then the PAN's."""
  return np.concatenate([band_responses(num_bands, band_edges),
                         pan_response(num_bands, pan_edges)[None]])


def material_tables(rng: np.random.Generator, num_bands: int, band_edges=(),
                    pan_edges=()):
  """Per-scene material values in the sensor's channels (MS bands + PAN).

  Each material's curve is scaled and tilted a little per scene (no two
  fields of wheat are alike). Returns `(sunlit, shaded, haze)`: the
  (components, channels) values under full sun and in shadow, and the
  (channels,) haze spectrum, all as reflectance-like fractions.
  """
  channels = sensor_channels(num_bands, band_edges, pan_edges)
  count = len(COMPONENTS)
  tilt = 1 + rng.uniform(-0.1, 0.1, (count, 1)) * (WAVELENGTHS - 700) / 300
  curves = reflectance() * rng.uniform(0.85, 1.15, (count, 1)) * tilt
  return (curves @ channels.T, (curves * skylight()) @ channels.T,
          channels @ path_radiance())
