"""Typed plumbing (STYLE.md section 10, "pass objects, not strings"): the inspection is a type that
round-trips report.json byte for byte, validation errors have one formatter, export formats one table,
and private tf_keras / TFMOT internals are reached through one module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sample_report import make_report

from edgeopt.errors import RecipeError
from edgeopt.formats import FORMATS, INTEGER_FORMATS, QAT_FORMATS, QUANTIZER_ONLY
from edgeopt.inspect import io_rows, summary_lines
from edgeopt.recipe import EXPORT_FORMATS, parse_recipe
from edgeopt.types import FloatOp, Format, Inspection, Report, Variant
from edgeopt.validation import describe_error, field_path

# An inspection as inspect_tflite writes it (keys in its order), with a key this edgeopt does not know.
FULL = {
    "size_bytes": 2200, "subgraphs": 1, "ops": {"QUANTIZE": 1, "FULLY_CONNECTED": 2, "SOFTMAX": 1},
    "op_list": [
        {"index": 0, "subgraph": 0, "op": "QUANTIZE", "inputs": ["float32"], "outputs": ["int8"], "macs": 0,
         "compute": "conversion", "weights": None},
        {"index": 1, "subgraph": 0, "op": "FULLY_CONNECTED", "inputs": ["int8", "int8", "int32"],
         "outputs": ["int8"], "macs": 640, "compute": "int8", "weights": "int8"},
        {"index": 2, "subgraph": 0, "op": "FULLY_CONNECTED", "inputs": ["float32", "float32", None],
         "outputs": ["float32"], "macs": 160, "compute": "float", "weights": "float32"},
    ],
    "macs": 800, "params": 846, "weight_elements": 800, "sparsity": 0.5, "pattern_2_4": 0.75,
    "pattern": {"structure": "2:4", "share": 0.75},
    "per_tensor": {
        "m/dense/MatMul": {"role": "weight", "shape": [64, 10], "dtype": "int8", "size": 640, "bytes": 640,
                           "sparse_encoded": False, "sparsity": 0.5, "unique_values": 17,
                           "unique_values_per_channel_max": 9, "pattern_2_4": 0.75, "pattern_share": 0.75,
                           "quantization": {"per_channel": 64, "quantized_dimension": 0}},
        "m/dense/BiasAdd": {"role": "bias", "shape": [64], "dtype": "int32", "size": 64, "bytes": 256,
                            "sparse_encoded": False, "sparsity": 0.0, "unique_values": 60,
                            "unique_values_per_channel_max": 60, "pattern_2_4": None, "pattern_share": None,
                            "quantization": None},
    },
    "int8_op_coverage": 0.5, "integer_op_coverage": 0.5,
    "float_ops": [{"index": 2, "op": "FULLY_CONNECTED", "tensor": "m/head/MatMul", "kernel": "m/head/w"}],
    "quantize_ops": {"QUANTIZE": 1, "DEQUANTIZE": 0}, "custom_ops": {},
    "input_details": [{"name": "x", "shape": [1, 10], "shape_signature": [-1, 10], "dtype": "int8",
                       "quantization": {"scale": 0.5, "zero_point": -3}}],
    "output_details": [{"name": "y", "shape": [1, 4], "shape_signature": [-1, 4], "dtype": "float32",
                        "quantization": None}],
    "from_a_newer_edgeopt": {"kept": True},
}


def _bytes(data) -> str:
    return json.dumps(data, indent=2, allow_nan=False)


# -- the inspection ------------------------------------------------------------------------------------


def test_an_inspection_round_trips_byte_for_byte_and_is_read_by_attribute():
    info = Inspection.from_json(FULL)
    assert _bytes(info.to_json()) == _bytes(FULL)
    assert info.macs == 800 and info.params == 846 and info.pattern_share == 0.75
    assert list(info.weights()) == ["m/dense/MatMul"] and info.weights()["m/dense/MatMul"].dtype == "int8"
    assert [op.compute for op in info.op_list] == ["conversion", "int8", "float"]
    assert info.float_ops[0].names == ("m/head/MatMul", "m/head/w")
    assert info.input_details[0].scale == 0.5 and info.input_details[0].zero_point == -3
    assert info.extra == {"from_a_newer_edgeopt": {"kept": True}}


def test_every_inspection_of_a_sample_report_round_trips_byte_for_byte():
    for task in ("classification", "regression"):
        data = make_report(task)
        for variant in data["variants"]:
            assert _bytes(Inspection.from_json(variant["inspect"]).to_json()) == _bytes(variant["inspect"])
        assert _bytes(Report.from_json(data).to_json()) == _bytes(data)


def test_an_older_reports_inspection_reads_and_writes_back_as_it_was():
    """Fields it lacks stay absent, an op listed by its plain name stays a name, ``{}`` is no inspection."""
    older = {"ops": {"CONV_2D": 1}, "float_ops": ["CONV_2D", {"index": 3, "op": "MEAN"}]}
    info = Inspection.from_json(older)
    assert _bytes(info.to_json()) == _bytes(older)
    assert info.float_op_names() == ["CONV_2D", "MEAN"] and info.macs is None and not info.holds("macs")
    assert info.float_ops[0] == FloatOp(op="CONV_2D", name_only=True, keys=())
    keras = Variant.from_json({"name": "keras_float", "format": "keras", "inspect": {}})
    assert keras.inspect.empty and keras.to_json()["inspect"] == {}
    assert "inspect" not in Variant.from_json({"name": "int8"}).to_json()
    assert not Variant(name="int8", inspect=FULL).inspect.empty  # inspect_tflite's dict, typed on the way in


def test_the_inspect_command_lines_read_the_typed_inspection():
    lines = summary_lines(FULL)
    assert lines == summary_lines(Inspection.from_json(FULL))
    assert lines[0] == "size 2,200 bytes, params 846, MACs 800"
    assert "x int8[1, 10] (scale 0.5, zero point -3)" in lines[2]
    assert io_rows(FULL) == [["input", "x", "1x10", "int8", "0.5", "-3"],
                             ["output", "y", "1x4", "float32", "-", "-"]]


# -- one formatter of validation errors -----------------------------------------------------------------


def test_a_nested_field_is_named_as_the_user_writes_it():
    error = {"type": "less_than", "loc": ("stages", 0, "prune", "target_sparsity"),
             "msg": "Input should be less than 1", "input": 2}
    assert describe_error(error, tags={"prune"}) == (
        "stages[0].target_sparsity: input should be less than 1, got 2")
    assert field_path(("tolerances", "function-after[check()]", "metric_abs", "mae"), root="x") == (
        "x.tolerances.metric_abs.mae")
    assert describe_error({"type": "value_error", "loc": ("a",), "msg": "Value error, must be even",
                           "input": 3}) == "a: must be even"
    assert describe_error({"type": "missing", "loc": ("data",), "msg": "Field required", "input": {}}) == (
        "data: required field is missing")
    assert describe_error({"type": "greater_than", "loc": ("threads", 1), "msg": "Input should be > 0",
                           "input": 0}, names={"threads": "--threads"}) == (
        "--threads: input should be > 0, got 0")
    assert describe_error({"type": "dict_type", "loc": (), "msg": "Input should be a dict", "input": 1},
                          whole="tolerances") == "tolerances: input should be a dict, got 1"


def test_recipes_say_a_nested_mistake_in_one_line():
    with pytest.raises(RecipeError, match=re.escape("recipe: stages[0].target_sparsity: input should be less "
                                                    "than 1, got 2")):
        parse_recipe({"model": "digits_cnn", "data": "digits",
                      "stages": [{"kind": "prune", "target_sparsity": 2}]})


def test_every_pydantic_error_in_edgeopt_goes_through_the_one_formatter():
    root = Path(__file__).resolve().parents[2] / "edgeopt"
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if ".errors()" in p.read_text() and p.name != "validation.py")
    assert readers == []


# -- one table of export formats -------------------------------------------------------------------------


def test_the_format_table_drives_what_a_recipe_may_export_and_says_so():
    assert EXPORT_FORMATS == tuple(FORMATS) == ("float32", "float16", "dynamic", "int8", "int16x8", "int4")
    assert set(FORMATS) == {f.value for f in Format if f != Format.KERAS}
    assert INTEGER_FORMATS == ("int8", "int16x8") and QAT_FORMATS == ("int8",) and QUANTIZER_ONLY == ("int4",)
    assert FORMATS["int16x8"].file_name == "int16x8.tflite"
    with pytest.raises(RecipeError) as refused:
        parse_recipe({"model": "digits_cnn", "data": "digits", "export": ["int3"]})
    assert all(f"'{name}'" in str(refused.value) for name in FORMATS), str(refused.value)


def test_int4_needs_the_quantizer_the_table_names():
    from edgeopt.litert_backend import export_problem

    assert "int4 is made by the LiteRT quantizer" in export_problem([], ["float32", "int4"])


# -- private internals through one module --------------------------------------------------------------


PRIVATE = re.compile(r"tensorflow_model_optimization\.python|tf_keras\.src|_is_graph_network"
                     r"|_keras_history|_nodes_by_depth|_outbound_nodes"
                     r"|_experimental_calibrate_only|mlir_quantize|lite\.python\.convert"  # TF's converter
                     r"|_get_ops_details"  # LiteRT
                     r"|\._storage\b|\._trial_id\b|journal\._storage")  # Optuna


def test_private_internals_of_the_libraries_are_reached_only_through_edgeopt_internals():
    root = Path(__file__).resolve().parents[2] / "edgeopt"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if p.name != "internals.py" and PRIVATE.search(p.read_text()))
    assert users == []
    from edgeopt import internals

    for name in ("is_graph_network", "nodes_by_depth", "producing_layer", "consuming_layers",
                 "builtin_layer_classes", "safe_mode_off", "cluster_weights_class",
                 "cluster_preserve_registry", "default_8bit_configs", "default_8bit_registry",
                 "calibrated_model", "quantize_calibrated", "interpreter_nodes", "set_trial_attr",
                 "fail_trial",
                 "stored_trial", "journal_operations"):
        assert f":func:`{name}`" in internals.__doc__, f"{name} is not explained in edgeopt.internals"
