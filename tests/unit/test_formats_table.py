"""One table of export formats (edgeopt.formats.FORMATS): the converter is set up from a format's row, never
from its name, and every file comes out byte for byte as the per-format if-chain edgeopt.convert had
before made it; the report's Format enum equals the table and no other list of format names exists."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from edgeopt import convert as convert_module
from edgeopt import formats
from edgeopt.convert import convert, integer_converter
from edgeopt.formats import CONVERTER, FORMATS, ExportFormat
from edgeopt.kerasapi import keras, tf
from edgeopt.types import Format

CONVERTED = [name for name, row in FORMATS.items() if CONVERTER in row.makers]  # all but int4


# -- the old code, copied: what every format's converter was set to before the table -----------------


def _old_configure(converter, fmt, representative, *, int8_io="int8", sparse_encoding=False):
    """edgeopt.convert.convert's if-chain as it was (only the converter's creation and convert() cut)."""
    _representative = convert_module._representative
    optimizations = []
    if fmt == "float32":
        pass
    elif fmt == "float16":
        optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic":
        optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt in ("int8", "int16x8"):
        if representative is None:
            raise ValueError(f"{fmt} export needs representative data")
        optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(representative)
        if fmt == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io == "int8":
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    if sparse_encoding:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    return converter


def _old_integer_converter(converter, representative, *, int8_io="int8"):
    """edgeopt.convert.integer_converter as it was (the converter given)."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = convert_module._representative(representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


# The old Format enum, copied: report.json's format strings may not change.
OLD_FORMAT = [("KERAS", "keras"), ("FLOAT32", "float32"), ("FLOAT16", "float16"), ("DYNAMIC", "dynamic"),
              ("INT8", "int8"), ("INT16X8", "int16x8"), ("INT4", "int4")]


# -- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)  # Dense(4->64->32): 2048 weights, so dynamic quantizes them
    return keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(32)])


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)


def _state(converter) -> dict:
    """Everything a converter was set to: its attributes, its target spec's, and the samples its
    representative dataset yields (the two bookkeeping objects every converter has its own of left out)."""
    state = {k: v for k, v in vars(converter).items() if k not in ("_tflite_metrics", "_metadata")}
    state["target_spec"] = dict(vars(converter.target_spec))
    data = converter.representative_dataset
    state["representative_dataset"] = None if data is None else [
        [np.asarray(x).tolist() for x in sample] for sample in data()]
    return state


def _new_state(monkeypatch, model, fmt, representative, **options) -> dict:
    """The state of the converter edgeopt.convert.convert sets up for ``fmt`` (its convert() stubbed)."""
    made = []

    def converter_of(m):
        converter = tf.lite.TFLiteConverter.from_keras_model(m)
        converter.convert = lambda: b"stub"
        made.append(converter)
        return converter

    monkeypatch.setattr(convert_module, "_converter", converter_of)
    assert convert(model, fmt, representative, **options) == b"stub"
    del made[0].convert  # the stub is no setting
    return _state(made[0])


def _fresh(model):
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _old_state(model, fmt, representative, **options) -> dict:
    return _state(_old_configure(_fresh(model), fmt, representative, **options))


# -- the converter's settings, row by row -------------------------------------------------------------------


@pytest.mark.parametrize("sparse_encoding", [False, True])
@pytest.mark.parametrize("int8_io", ["int8", "float"])
@pytest.mark.parametrize("fmt", CONVERTED)
def test_each_row_sets_the_converter_as_the_old_if_chain_did(monkeypatch, model, samples, fmt, int8_io,
                                                             sparse_encoding):
    options = {"int8_io": int8_io, "sparse_encoding": sparse_encoding}
    new = _new_state(monkeypatch, model, fmt, samples, **options)
    assert new == _old_state(model, fmt, samples, **options)


def test_the_converted_formats_are_the_old_five():
    assert CONVERTED == ["float32", "float16", "dynamic", "int8", "int16x8"]


@pytest.mark.parametrize("int8_io", ["int8", "float"])
def test_the_integer_converter_is_the_int8_row(model, samples, int8_io):
    new = integer_converter(model, samples, int8_io=int8_io)
    old = _old_integer_converter(_fresh(model), samples, int8_io=int8_io)
    assert _state(new) == _state(old)
    assert (new.inference_input_type == tf.int8) is (int8_io == "int8")


def test_every_format_converts_to_the_same_bytes_as_before(model, samples):
    cases = [(fmt, {}) for fmt in CONVERTED] + [("int8", {"int8_io": "float"})]
    files = {}
    for fmt, options in cases:
        new = convert(model, fmt, samples, **options)
        old = _old_configure(_fresh(model), fmt, samples, **options).convert()
        assert new == old, (fmt, options)
        files[new] = (fmt, options)
    assert len(files) == len(cases)  # each setting changes the file: the comparison can tell rows apart


def test_a_new_row_is_converted_from_its_settings_alone(monkeypatch, model, samples):
    half = ExportFormat("float16_copy", "a float16 twin", makers=(CONVERTER,), optimize=True,
                        supported_types=("float16",))
    monkeypatch.setitem(FORMATS, half.name, half)
    twin = _new_state(monkeypatch, model, "float16_copy", None)
    assert twin == _new_state(monkeypatch, model, "float16", None)
    integer = ExportFormat("int8_float_io", "int8 with float input and output", integer=True,
                           optimize=True, supported_ops=(formats.INT8_OPS,))
    monkeypatch.setitem(FORMATS, integer.name, integer)
    assert (_new_state(monkeypatch, model, "int8_float_io", samples)
            == _new_state(monkeypatch, model, "int8", samples, int8_io="float"))


def test_what_the_converter_cannot_make_is_refused_before_converting(model):
    with pytest.raises(ValueError, match="unknown export format 'int3'"):
        convert(model, "int3")
    with pytest.raises(ValueError, match="unknown export format 'keras'"):
        convert(model, Format.KERAS)
    with pytest.raises(ValueError, match="int4 export needs quantization=: a quantize stage with backend "
                                         "litert-quantizer"):
        convert(model, "int4")
    for fmt in ("int8", "int16x8"):
        with pytest.raises(ValueError, match=f"{fmt} export needs representative data"):
            convert(model, fmt)


def test_every_setting_a_row_names_is_tensorflows():
    for row in FORMATS.values():
        assert all(isinstance(getattr(tf.lite.OpsSet, name), tf.lite.OpsSet) for name in row.supported_ops)
        assert all(tf.as_dtype(name) is not None for name in row.supported_types)
        assert not (row.int8_io and not row.integer), row.name  # int8 input needs int8 calibration


# -- the names, from the table ------------------------------------------------------------------------------


def test_the_format_enum_is_keras_and_the_table_and_spells_what_it_did():
    members = [(m.name, m.value) for m in Format]
    assert members == [("KERAS", "keras"), *((name.upper(), name) for name in FORMATS)]
    assert members == OLD_FORMAT
    assert Format.INT16X8 == "int16x8" and str(Format.INT8) == "int8" and Format("dynamic") is Format.DYNAMIC
    assert Format.__module__ == "edgeopt.types" and Format.__qualname__ == "Format"


def _listed_formats(source: str) -> list[tuple[int, list[str]]]:
    """Literal collections in ``source`` naming two export formats or more, one of them a format's name
    only (``float32``, ``float16`` and ``int8`` are dtype names too, and dtype tables list them)."""
    only_formats = set(FORMATS) - {"float32", "float16", "int8"}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elements = node.elts
        elif isinstance(node, ast.Dict):
            elements = node.keys
        else:
            continue
        names = {e.value for e in elements if isinstance(e, ast.Constant) and e.value in FORMATS}
        if len(names) >= 2 and names & only_formats:
            found.append((node.lineno, sorted(names)))
    return found


def test_the_finder_of_format_lists_finds_one():
    assert _listed_formats('X = click.Choice(["float32", "dynamic"])\nY = {"float16": 2, "int8": 1}') == [
        (1, ["dynamic", "float32"])]


def test_no_module_but_the_table_lists_the_export_formats():
    root = Path(__file__).resolve().parents[2] / "edgeopt"
    lists = {str(p.relative_to(root)): found for p in sorted(root.rglob("*.py"))
             if p.name != "formats.py" and (found := _listed_formats(p.read_text()))}
    assert lists == {}
