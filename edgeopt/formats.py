"""The export formats, once: every fact edgeopt knows about a ``.tflite`` format, in one table.

:data:`FORMATS` holds one :class:`ExportFormat` per format a recipe's ``export`` may name, in the
order recipes, help texts and reports list them. Everything else is derived from it: the names a
recipe accepts (:data:`EXPORT_NAMES`), the variant formats of report.json
(:class:`edgeopt.types.Format`, whose members are ``keras`` and these names), how TensorFlow's
converter is set up for each (:func:`edgeopt.convert.convert` applies the row, it never branches on a
name), the formats with integer activations (converted with representative data, repaired when over
budget), the formats exported from the quantization-aware model, and the formats only the LiteRT
quantizer makes. A new format is one more row here. No TensorFlow: a row names the converter's
settings by TensorFlow's own names, and :mod:`edgeopt.convert` looks them up.
"""

from __future__ import annotations

from dataclasses import dataclass

CONVERTER = "tflite"  # TensorFlow's TFLite converter
QUANTIZER = "litert-quantizer"  # the LiteRT (AI Edge) quantizer, a quantize stage's ``backend``

# The ``tf.lite.OpsSet`` members a row may restrict the converter to, by name.
INT8_OPS = "TFLITE_BUILTINS_INT8"
INT16X8_OPS = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"


@dataclass(frozen=True)
class ExportFormat:
    """One export format: what it is, and how TensorFlow's converter makes it."""

    name: str  # the format's name: in a recipe's ``export``, report.json's ``format`` and the file name
    summary: str  # what the file holds, for help texts
    integer: bool = False  # integer activations: converted with representative data, can be repaired
    from_qat: bool = False  # exported from the quantization-aware model when the recipe trains one
    makers: tuple[str, ...] = (CONVERTER, QUANTIZER)  # the backends that can make it
    # The converter's settings (used when CONVERTER makes it; an integer format also gets the
    # representative data as ``representative_dataset``):
    optimize: bool = False  # ``optimizations = [tf.lite.Optimize.DEFAULT]``: quantize what the rest allows
    supported_types: tuple[str, ...] = ()  # ``target_spec.supported_types``, as TensorFlow dtype names
    supported_ops: tuple[str, ...] = ()  # ``target_spec.supported_ops``, as ``tf.lite.OpsSet`` names
    int8_io: bool = False  # int8 input and output tensors, unless the recipe's ``int8_io`` is ``float``

    @property
    def file_name(self) -> str:
        """The file a run writes it to, beside report.json."""
        return f"{self.name}.tflite"


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("float32", "float32 weights and activations", makers=(CONVERTER,)),
    ExportFormat("float16", "float16 weights, float32 activations", makers=(CONVERTER,),
                 optimize=True, supported_types=("float16",)),
    ExportFormat("dynamic", "int8 weights, activations quantized on the fly", optimize=True),
    ExportFormat("int8", "full integer: int8 weights and activations", integer=True, from_qat=True,
                 optimize=True, supported_ops=(INT8_OPS,), int8_io=True),
    ExportFormat("int16x8", "int16 activations, int8 weights; float input and output", integer=True,
                 optimize=True, supported_ops=(INT16X8_OPS,)),
    ExportFormat("int4", "int4 weights, float activations", makers=(QUANTIZER,)),
)}

EXPORT_NAMES: tuple[str, ...] = tuple(FORMATS)  # what a recipe's ``export`` may list, in order
INTEGER_FORMATS: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.integer)
QAT_FORMATS: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.from_qat)
QUANTIZER_ONLY: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.makers == (QUANTIZER,))
