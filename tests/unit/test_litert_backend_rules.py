"""The LiteRT quantizer backend's rules without running it: which export its recipe makes, how Keras
layers are found in tensor names, the quantizer recipe built from a stage, and the format checks of
what it made (an int4 file stores int4 weights; layers kept in float on purpose do not fail int8)."""

from __future__ import annotations

import pytest

from edgeopt.errors import RecipeError
from edgeopt.litert_backend import RECIPES, export_problem, library_recipe, makes, owners
from edgeopt.recipe import parse_recipe
from edgeopt.techniques.quantize import QuantizeStage
from edgeopt.types import StageOutcome, Variant
from edgeopt.verify import run_checks

HEAD = {"model": "facepose_mlp", "data": "facepose"}


def litert(recipe: str, **fields) -> QuantizeStage:
    return QuantizeStage(mode="ptq", backend="litert-quantizer", recipe=recipe, **fields)


def test_each_recipe_makes_one_export_format_and_int4_only_through_it():
    assert {RECIPES[name] for name in ("static_wi8_ai8", "static_wi8_ai16", "dynamic_wi8_afp32")} == {
        "int8", "int16x8", "dynamic"}
    assert {fmt for name, fmt in RECIPES.items() if "wi4" in name} == {"int4"}
    stage = litert("weight_only_wi4_afp32")
    assert makes(stage, "int4") and not makes(stage, "int8") and not makes(QuantizeStage(mode="ptq"), "int8")
    assert export_problem([stage], ["float32", "int4"]) is None
    assert "add int4 to export" in export_problem([stage], ["float32", "int8"])
    int8_only = export_problem([litert("static_wi8_ai8")], ["int8", "int4"])
    assert "int4 is made by the LiteRT quantizer" in int8_only


@pytest.mark.parametrize(("stage", "export", "says"), [
    ({"recipe": "static_wi8_ai8"}, ["int8"], "stages[0].recipe: a recipe is for backend litert-quantizer"),
    ({"layers": {"hidden1": "float"}}, ["int8"], "stages[0].layers: per-layer overrides are for backend"),
    ({"backend": "litert-quantizer"}, ["int8"], "stages[0].recipe: backend litert-quantizer needs a recipe"),
    ({"backend": "litert-quantizer", "recipe": "static_wi8_ai8", "layers": {"hidden1": "int4"}}, ["int8"],
     "stages[0].layers: hidden1: unknown recipe 'int4'"),
    ({"backend": "litert-quantizer", "recipe": "static_wi8_ai8"}, ["float32", "int4"],
     "export: stages[0].recipe static_wi8_ai8 makes the int8 export"),
    ({"backend": "litert-quantizer", "recipe": "static_wi8_ai8", "repair": "auto"}, ["int8"],
     "stages[0].backend: repair: auto repairs the TFLite converter's exports"),
])
def test_a_stage_the_backend_cannot_serve_is_refused_naming_its_field(stage, export, says):
    with pytest.raises(RecipeError) as caught:
        parse_recipe({**HEAD, "stages": [{"kind": "quantize", "mode": "ptq", **stage}], "export": export})
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_a_layer_is_found_as_a_path_component_of_tensor_names():
    names = ["facepose_mlp/hidden1/MatMul;facepose_mlp/hidden1/BiasAdd", "model/dense_10/BiasAdd"]
    assert owners(names, ["hidden1", "hidden", "dense_1", "dense_10"]) == {"hidden1", "dense_10"}


def test_overrides_come_after_the_whole_model_recipe_on_exact_scopes():
    plan = library_recipe("weight_only_wi4_afp32", {"pose": ("float", ["StatefulPartitionedCall:0;"]),
                                                    "hidden1": ("static_wi8_ai8", ["a/hidden1/Tanh;"])},
                          float_io=True)
    assert [entry["regex"] for entry in plan] == [
        ".*", "^(?:StatefulPartitionedCall:0;)$", "^(?:a/hidden1/Tanh;)$", "^", "^"]
    assert plan[1]["algorithm_key"] == "no_quantize"
    assert plan[2]["op_config"]["activation_tensor_config"]["num_bits"] == 8
    assert [entry["operation"] for entry in plan[-2:]] == ["INPUT", "OUTPUT"]


def _variant(fmt: str, weights: dict[str, str], float_ops=()) -> Variant:
    tensors = {name: {"role": "weight", "dtype": dtype} for name, dtype in weights.items()}
    inspect = {"per_tensor": tensors, "float_ops": list(float_ops)}
    return Variant(name=fmt, format=fmt, status="ok", inspect=inspect)


def _asked(fmt: str, layers: dict[str, str]) -> StageOutcome:
    kept = [name for name, choice in layers.items() if choice == "float"]
    return StageOutcome(kind="quantize", params={}, achieved={"format": fmt, "layers": layers,
                                                              "float_layers": kept})


def test_an_int4_export_must_store_int4_weights_but_for_overridden_layers():
    weights = {"m/hidden1/MatMul": "int4", "m/pose/MatMul": "float32"}
    failed = run_checks([_asked("int4", {})], [_variant("int4", weights)])
    assert [(c.check, c.ok) for c in failed] == [("int4_weights", False)]
    assert "m/pose/MatMul (float32)" in failed[0].message
    passed = run_checks([_asked("int4", {"pose": "float"})], [_variant("int4", weights)])
    assert [(c.check, c.ok) for c in passed] == [("int4_weights", True)]
    assert "1 of 2 weight tensors stored in int4 but for pose" in passed[0].message


def test_float_ops_of_layers_a_stage_kept_in_float_pass_the_int8_check_and_no_others():
    # The output layer's op is named by its kernel only: its output tensor is the model's output.
    pose = {"op": "FULLY_CONNECTED", "tensor": "StatefulPartitionedCall:0", "kernel": "m/pose/MatMul"}
    stray = {"op": "TANH", "tensor": "m/hidden3/Tanh", "kernel": None}
    int8 = _variant("int8", {"m/pose/MatMul": "float32"}, [pose])
    (check,) = run_checks([_asked("int8", {"pose": "float"})], [int8])
    assert check.check == "int8_ops" and check.ok
    assert "kept in float by the quantize stage" in check.message
    (check,) = run_checks([_asked("int8", {"pose": "float"})], [_variant("int8", {}, [pose, stray])])
    assert not check.ok and "TANH" in check.message
    # A stage that made another format exempts nothing in int8.
    (check,) = run_checks([_asked("int4", {"pose": "float"})], [int8])
    assert not check.ok
