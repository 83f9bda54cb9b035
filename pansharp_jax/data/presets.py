"""Sensor presets of the synthetic source (`config.data.synthetic.preset`).

A preset is what makes a synthetic scene look like one sensor's product:
its MS band and PAN responses (half-power edges in nm, from the operators'
published specifications), the MTF filters of Wald's protocol
(`data/wald.py`), the ratio, the bit depth of the delivered product, the
part of that range real scenes occupy, noise and MS/PAN misregistration.

The radiometric range matters most: 11-bit VHR products (IKONOS,
QuickBird, WorldView-2/3) come as DN of 0..2047 of which land scenes use
roughly 50..700 (unit-scale values ~0.02-0.35), 8-bit products (the
GeoEye-1 sets of the field's benchmarks) are stretched to fill 0..255, and
Landsat 8/9 Level-1 products store 12-bit (Landsat 9's OLI-2: 14-bit)
measurements scaled to 16 bits (reflectance = 2e-5 DN - 0.1: full scale is
reflectance 1.21, and the offset alone reads 5000 DN; land reads
~7000-30000 DN of 65535).
`brightness` is the range of the per-scene factor from reflectance to a
fraction of full scale, `offset` a constant added to every channel
(Landsat's -0.1 reflectance offset).

Landsat 8/9 is not in the MTF table of the reference toolbox; its preset
uses the toolbox's generic gains (0.3 MS, 0.15 PAN), and only the four
VNIR bands (blue, green, red, NIR: B2-B5) that pansharpening work uses; its
PAN (B8, 503-676 nm) does not see the NIR band.

`preset=""` is the unnamed sensor of the README demo: QuickBird-like band
edges for 4 bands (WorldView-3-like for 8), any `data.sensor` and
`data.max_value`, scenes filling a good part of the range.
"""

import dataclasses

from pansharp_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SensorPreset:
  """One sensor's product as the synthetic source imitates it."""
  name: str
  band_edges: tuple           # ((low, high) nm,) per MS band; () = spectra's default
  pan_edges: tuple            # (low, high) nm of the PAN; () = spectra's default
  sensor: str                 # data.sensor: the MTF table of data/wald.py
  ratio: int
  max_value: float            # full scale of the product (DN)
  brightness: tuple           # (low, high): reflectance -> fraction of full scale
  offset: float = 0.0         # added to every channel, fraction of full scale
  haze: tuple = (0.01, 0.05)  # (low, high) of the haze radiance, fraction of full scale
  ms_noise: float = 0.002     # noise std, fraction of full scale
  pan_noise: float = 0.003
  max_shift: float = 0.3      # largest MS/PAN misregistration (MS pixels)
  pan_blur: float = 0.6       # std (PAN px) of the PAN's own Gaussian blur

  @property
  def num_bands(self) -> int:
    return len(self.band_edges)


def _dn(value: float, max_value: float) -> float:
  return value / max_value


_VHR_11BIT = dict(max_value=2047.0, ratio=4, haze=(0.005, 0.02),
                  ms_noise=_dn(2.5, 2047), pan_noise=_dn(4.0, 2047))
_WV_BANDS = ((400, 450), (450, 510), (510, 580), (585, 625), (630, 690),
             (705, 745), (770, 895), (860, 1040))

PRESETS = {
    "ikonos": SensorPreset(
        "ikonos", ((445, 516), (506, 595), (632, 698), (757, 853)),
        (526, 929), "IKONOS", brightness=(0.45, 0.8), **_VHR_11BIT),
    "quickbird": SensorPreset(
        "quickbird", ((450, 520), (520, 600), (630, 690), (760, 900)),
        (450, 900), "QB", brightness=(0.5, 0.9), **_VHR_11BIT),
    "wv2": SensorPreset("wv2", _WV_BANDS, (450, 800), "WV2",
                        brightness=(0.4, 0.75), **_VHR_11BIT),
    "wv3": SensorPreset("wv3", _WV_BANDS, (450, 800), "WV3",
                        brightness=(0.4, 0.75), **_VHR_11BIT),
    # 8-bit products stretched to the range; bright roofs saturate.
    "geoeye1": SensorPreset(
        "geoeye1", ((450, 510), (510, 580), (655, 690), (780, 920)),
        (450, 800), "GeoEye1", ratio=4, max_value=255.0,
        brightness=(1.6, 2.4), ms_noise=_dn(0.8, 255), pan_noise=_dn(1.0, 255)),
    "landsat8": SensorPreset(
        "landsat8", ((452, 512), (533, 590), (636, 673), (851, 879)),
        (503, 676), "generic", ratio=2, max_value=65535.0,
        brightness=(0.72, 0.8), offset=0.076, haze=(0.005, 0.02),
        ms_noise=_dn(40.0, 65535), pan_noise=_dn(60.0, 65535),
        max_shift=0.2, pan_blur=0.4),
}
# The README demo's unnamed sensor (band edges by band count in spectra.py).
DEFAULT = SensorPreset("", (), (), "QB", ratio=4, max_value=2047.0,
                       brightness=(1.2, 1.6))


def get_preset(data_config) -> SensorPreset:
  """The preset `config.data.synthetic.preset` names, checked against the
  data fields it fixes (num_bands, ratio, sensor, max_value); the unnamed
  one takes them from the config."""
  name = str(data_config.synthetic.get("preset", "")).lower()
  if not name:
    return dataclasses.replace(DEFAULT, sensor=data_config.sensor,
                               ratio=int(data_config.ratio),
                               max_value=float(data_config.max_value))
  if name not in PRESETS:
    raise ConfigError(f"config.data.synthetic.preset: unknown preset {name!r}; "
                      f"one of {', '.join(PRESETS)} or ''")
  preset = PRESETS[name]
  wanted = {"num_bands": preset.num_bands, "ratio": preset.ratio,
            "sensor": preset.sensor, "max_value": preset.max_value}
  for field, value in wanted.items():
    have = data_config[field]
    same = (str(have).lower() == value.lower() if isinstance(value, str)
            else float(have) == float(value))
    if not same:
      raise ConfigError(f"config.data.{field}: preset {name!r} needs "
                        f"{value}, got {have} (see preset_overrides)")
  return preset


def preset_overrides(name: str) -> dict:
  """The config overrides a run with preset `name` needs, e.g.
  {'data.synthetic.preset': 'wv2', 'data.num_bands': 8, ...}."""
  preset = PRESETS[name]
  return {"data.synthetic.preset": name, "data.num_bands": preset.num_bands,
          "data.ratio": preset.ratio, "data.sensor": preset.sensor,
          "data.max_value": preset.max_value}
