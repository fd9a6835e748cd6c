"""The export formats, once: every fact edgeopt knows about a ``.tflite`` format, in one table.

:data:`FORMATS` holds one :class:`ExportFormat` per format a recipe's ``export`` may name, in the
order recipes, help texts and reports list them. Everything else is derived from it: the names a
recipe accepts (:data:`EXPORT_NAMES`), the formats with integer activations (converted with
representative data, repaired when over budget), the formats exported from the quantization-aware
model, and the formats only the LiteRT quantizer makes. A new format is one more row here.
No TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.types import Format

CONVERTER = "tflite"  # TensorFlow's TFLite converter
QUANTIZER = "litert-quantizer"  # the LiteRT (AI Edge) quantizer, a quantize stage's ``backend``


@dataclass(frozen=True)
class ExportFormat:
    """One export format and what it is."""

    format: Format
    summary: str  # what the file holds, for help texts
    integer: bool = False  # integer activations: needs representative data, can be repaired
    from_qat: bool = False  # exported from the quantization-aware model when the recipe trains one
    makers: tuple[str, ...] = (CONVERTER, QUANTIZER)  # the backends that can make it

    @property
    def name(self) -> str:
        return str(self.format)

    @property
    def file_name(self) -> str:
        """The file a run writes it to, beside report.json."""
        return f"{self.format}.tflite"


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat(Format.FLOAT32, "float32 weights and activations", makers=(CONVERTER,)),
    ExportFormat(Format.FLOAT16, "float16 weights, float32 activations", makers=(CONVERTER,)),
    ExportFormat(Format.DYNAMIC, "int8 weights, activations quantized on the fly"),
    ExportFormat(Format.INT8, "full integer: int8 weights and activations", integer=True, from_qat=True),
    ExportFormat(Format.INT16X8, "int16 activations, int8 weights; float input and output", integer=True),
    ExportFormat(Format.INT4, "int4 weights, float activations", makers=(QUANTIZER,)),
)}

EXPORT_NAMES: tuple[str, ...] = tuple(FORMATS)  # what a recipe's ``export`` may list, in order
INTEGER_FORMATS: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.integer)
QAT_FORMATS: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.from_qat)
QUANTIZER_ONLY: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.makers == (QUANTIZER,))
