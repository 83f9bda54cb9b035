"""Flops and HBM bytes of a program compiled for a GPU, loops counted.

XLA's cost analysis of a compiled module counts each while loop's body once
(a scan of 10 steps reports the flops of 1) and a Mosaic GPU custom call's
work not at all. `step_cost(compiled)` repairs both: it reruns the analysis
on each loop body as a module of its own (through the CPU client, which
analyses GPU HLO as well) and multiplies it by the loop's known trip count,
recursively; and it counts the fused scan kernels' own HBM bytes
(`scan_kernel.hbm_bytes`, from each kernel call's operand shapes). Loops
whose trip count XLA does not know count once (reported).

XLA's "bytes accessed" is no lower bound: its generic analysis charges a
fusion every operand whole, so a loop that reads one chunk of a large
buffer per trip (the chunked attention's keys) is charged the whole buffer
each time. The roofline bound therefore uses the flops and only the bytes
that surely move: the fused kernels' own.
"""

import dataclasses
import re

import jax
import jaxlib._hlo as hlo
from jax._src.lib import _jax

from pansharp_jax.ops import scan_kernel

_HEADER = re.compile(r"^(ENTRY )?%?([\w.\-]+)\b.*\{$")  # unindented: a computation
_CALLEE = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)")
_CALLEES = re.compile(r"(?:branch_computations|called_computations)=\{([^}]*)\}")
_WHILE = re.compile(r" while\(.*body=%?([\w.\-]+)")
_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_KERNEL = re.compile(r'custom_call_target="' + scan_kernel.CUSTOM_CALL +
                     r'", operand_layout_constraints=\{(.*?)\}, api_version')
_SHAPE = re.compile(r"(bf16|f16|f32|s32)\[([\d,]*)\]")
_ITEMSIZE = {"bf16": 2, "f16": 2, "f32": 4, "s32": 4}


@dataclasses.dataclass
class Cost:
  flops: float
  xla_bytes: float           # XLA's bytes accessed, loops counted (an overcount)
  kernel_bytes: float        # the fused scan kernels' HBM bytes
  loops: int                 # while loops in the program
  unknown_trips: int         # of which counted once (trip count unknown)

  def seconds_on(self, target) -> float:
    """Roofline lower bound: flops at the dense bf16 peak, or the kernels'
    bytes at the HBM bandwidth, whichever takes longer."""
    return max(self.flops / target.bf16_dense_flops,
               self.kernel_bytes / target.hbm_bytes_per_s)


_ENTRY = "<entry>"  # key of the entry computation's name


def _computations(text: str) -> dict:
  """name -> lines (header first) of each computation of an HLO module text."""
  blocks, name = {}, None
  for line in text.splitlines():
    m = _HEADER.match(line)
    if m:
      name = m.group(2)
      blocks[name] = [line.removeprefix("ENTRY ")]
      if m.group(1):
        blocks[_ENTRY] = name
    elif name and line.strip() == "}":
      blocks[name].append(line)
      name = None
    elif name:
      blocks[name].append(line)
  return blocks


def _callees(lines) -> set[str]:
  names = set()
  for line in lines[1:]:
    names.update(_CALLEE.findall(line))
    for group in _CALLEES.findall(line):
      names.update(n.strip().lstrip("%") for n in group.split(","))
  return names


class _Analysis:
  def __init__(self, text: str):
    self.blocks = _computations(text)
    self.client = jax.devices("cpu")[0].client
    self.loops = self.unknown = 0

  def _module(self, name: str):
    """Computation `name` and everything it calls as a module of its own
    (callees first: the parser needs a computation before its use)."""
    order = []

    def visit(current):
      if current not in order:
        for callee in sorted(_callees(self.blocks[current])):
          visit(callee)
        order.append(current)

    visit(name)
    parts = ["HloModule part", ""]
    for other in order[:-1]:
      parts += self.blocks[other] + [""]
    parts += ["ENTRY " + self.blocks[name][0]] + self.blocks[name][1:]
    return hlo.hlo_module_from_text("\n".join(parts))

  def xla(self, name: str) -> dict:
    return _jax.hlo_module_cost_analysis(self.client, self._module(name))

  def full(self, name: str) -> tuple[float, float, float]:
    """(flops, bytes, kernel bytes) of computation `name`, loops unrolled."""
    own = self.xla(name)
    flops, nbytes = own.get("flops", 0.0), own.get("bytes accessed", 0.0)
    kernel = sum(_kernel_bytes(line) for line in self.blocks[name])
    for line in self.blocks[name]:
      m = _WHILE.search(line)
      if not m:
        continue
      self.loops += 1
      trips = _TRIPS.search(line)
      self.unknown += trips is None
      n = int(trips.group(1)) if trips else 1
      body = self.xla(m.group(1))
      b_flops, b_bytes, b_kernel = self.full(m.group(1))
      flops += n * b_flops - body.get("flops", 0.0)
      nbytes += n * b_bytes - body.get("bytes accessed", 0.0)
      kernel += n * b_kernel
    return flops, nbytes, kernel


def _kernel_bytes(line: str) -> float:
  """HBM bytes of one fused-scan kernel call, from its operands' shapes
  (its layout constraints): u (batch, length, channels) first, B (batch,
  length, d_state) third; the forward kernel has 6 operands (7 with a gate
  z), the backward 8 (9)."""
  m = _KERNEL.search(line)
  if not m:
    return 0.0
  shapes = [(t, [int(d) for d in dims.split(",") if d])
            for t, dims in _SHAPE.findall(m.group(1))]
  (u_type, (batch, length, channels)), (_, b_shape) = shapes[0], shapes[2]
  forward = len(shapes) in (6, 7)
  gate = len(shapes) in (7, 9)
  args = (batch, length, channels, b_shape[-1], _ITEMSIZE[u_type])
  both = scan_kernel.hbm_bytes(*args, gate=gate, backward=True, block=scan_kernel.BLOCK)
  fwd = scan_kernel.hbm_bytes(*args, gate=gate, block=scan_kernel.BLOCK)
  return float(fwd if forward else both - fwd)


def step_cost(compiled) -> Cost:
  """The loop-counted cost of a compiled (deviceless or not) program."""
  module = compiled._executable.xla_extension_executable().hlo_modules()[0]  # pylint: disable=protected-access
  options = hlo.HloPrintOptions.short_parsable()
  options.print_metadata = False
  analysis = _Analysis(module.to_string(options))
  flops, nbytes, kernel = analysis.full(analysis.blocks[_ENTRY])
  return Cost(flops, nbytes, kernel, analysis.loops, analysis.unknown)

