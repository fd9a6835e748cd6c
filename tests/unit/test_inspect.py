"""edgeopt.inspect reads what a .tflite really holds: ops, params, MACs, sparsity, 2:4, clusters, dtypes.

One tiny Keras model with planted structure (a 2:4-sparse 1x1 convolution, a clustered and 70%-sparse
dense kernel) is converted once per session to each export format; the tests check that the
inspection finds exactly what was planted, read from the flatbuffer alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from edgeopt.errors import InputError
from edgeopt.inspect import densify, inspect_tflite, pattern_m_by_n, tensor_arrays

CLUSTER_VALUES = (-0.6, -0.2, 0.3, 0.8)
DENSE_ZERO_FRACTION = 0.7


def _planted_model():
    from edgeopt.kerasapi import keras

    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv3x3")(inp)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.Conv2D(16, 1, name="conv1x1")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10, name="dense")(x)
    model = keras.Model(inp, out)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        # Distinct non-zero biases, so the converter cannot merge or drop any of them.
        weights = [rng.normal(0, 0.3, w.shape).astype("float32") for w in weights]
        weights[-1] = rng.uniform(0.1, 1.0, weights[-1].shape).astype("float32")
        if layer.name == "conv1x1":  # Keras [1, 1, Cin, Cout]: 2 zeros in every 4 input channels
            kernel = weights[0]
            for cout in range(16):
                for group in range(2):
                    zeros = rng.choice(4, size=2, replace=False) + 4 * group
                    kernel[0, 0, zeros, cout] = 0.0
        if layer.name == "dense":  # 4 clusters plus zero, 70% zeros
            kernel = rng.choice(CLUSTER_VALUES, size=weights[0].shape).astype("float32")
            kernel[rng.random(kernel.shape) < DENSE_ZERO_FRACTION] = 0.0
            weights[0] = kernel
        layer.set_weights(weights)
    return model


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """The planted model, its Keras weights, and one .tflite per format (converted once)."""
    from edgeopt.kerasapi import tf

    model = _planted_model()
    folder = tmp_path_factory.mktemp("inspect")
    rng = np.random.default_rng(1)

    def representative():
        for _ in range(8):
            yield [rng.random((1, 8, 8, 1), dtype=np.float32)]

    paths: dict[str, Path] = {}
    for fmt in ("float32", "float16", "dynamic", "int8", "sparse"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if fmt == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif fmt == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif fmt == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif fmt == "sparse":
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        paths[fmt] = folder / f"{fmt}.tflite"
        paths[fmt].write_bytes(converter.convert())
    kernels = {layer.name: layer.get_weights()[0] for layer in model.layers if layer.get_weights()}
    return {"model": model, "paths": paths, "kernels": kernels, "folder": folder}


def _expected_sparsity(kernels: dict[str, np.ndarray]) -> float:
    zeros = sum(int((k == 0).sum()) for k in kernels.values())
    return zeros / sum(k.size for k in kernels.values())


def _by_shape(info: dict, shape: list[int]) -> dict:
    matches = [t for t in info["per_tensor"].values() if t["role"] == "weight" and t["shape"] == shape]
    assert len(matches) == 1, f"expected one weight tensor of shape {shape}"
    return matches[0]


def test_float32_counts_params_macs_and_ops_like_keras(planted):
    info = inspect_tflite(planted["paths"]["float32"])
    assert info["params"] == planted["model"].count_params()
    # conv3x3: 6*6*8 outputs x 9; depthwise: 4*4*8 x 9; 1x1: 4*4*16 x 8; dense: 10 x 256.
    assert info["macs"] == 6 * 6 * 8 * 9 + 4 * 4 * 8 * 9 + 4 * 4 * 16 * 8 + 10 * 256
    assert info["ops"]["CONV_2D"] == 2 and info["ops"]["DEPTHWISE_CONV_2D"] == 1
    assert info["ops"]["FULLY_CONNECTED"] == 1
    assert info["int8_op_coverage"] == 0.0
    assert len(info["float_ops"]) == sum(info["ops"].values())
    assert info["input_details"][0]["dtype"] == "float32"
    assert info["input_details"][0]["shape"] == [1, 8, 8, 1]
    assert info["output_details"][0]["shape"] == [1, 10]
    json.dumps(info, allow_nan=False)


def test_weight_sparsity_2_4_and_clusters_are_read_from_the_file(planted):
    info = inspect_tflite(planted["paths"]["float32"])
    kernels = planted["kernels"]
    assert info["sparsity"] == pytest.approx(_expected_sparsity(kernels), abs=1e-9)
    conv1x1 = _by_shape(info, [16, 1, 1, 8])
    assert conv1x1["sparsity"] == 0.5
    assert conv1x1["pattern_2_4"] == 1.0
    dense = _by_shape(info, [10, 256])
    assert dense["unique_values"] == len(CLUSTER_VALUES) + 1
    assert dense["sparsity"] == pytest.approx(float((kernels["dense"] == 0).mean()))
    assert dense["pattern_2_4"] < 1.0  # random zeros do not make a 2:4 pattern
    assert _by_shape(info, [8, 3, 3, 1])["pattern_2_4"] == 1.0  # one input channel: trivially 2:4
    biases = [t for t in info["per_tensor"].values() if t["role"] == "bias"]
    assert sorted(t["size"] for t in biases) == [8, 8, 10, 16]


def test_int8_model_has_full_int8_coverage_and_keeps_sparsity(planted):
    info = inspect_tflite(planted["paths"]["int8"])
    assert info["int8_op_coverage"] == 1.0
    assert info["float_ops"] == []
    assert info["input_details"][0]["dtype"] == "int8"
    assert info["input_details"][0]["quantization"]["scale"] > 0
    assert _by_shape(info, [16, 1, 1, 8])["pattern_2_4"] == 1.0
    dense = _by_shape(info, [10, 256])
    assert dense["dtype"] == "int8"
    # Per-channel int8 keeps the clusters per output channel (4 values and zero at most).
    assert dense["unique_values_per_channel_max"] <= len(CLUSTER_VALUES) + 1
    # Every planted zero survives; a few tiny weights also round to the zero point.
    expected = _expected_sparsity(planted["kernels"])
    assert expected <= info["sparsity"] < expected + 0.01
    assert all(t["dtype"] == "int32" for t in info["per_tensor"].values() if t["role"] == "bias")


def test_dynamic_range_model_reports_float_ops_and_int8_weights(planted):
    info = inspect_tflite(planted["paths"]["dynamic"])
    assert info["float_ops"], "a dynamic-range model computes in float"
    assert info["int8_op_coverage"] == 0.0
    assert _by_shape(info, [10, 256])["dtype"] == "int8"


def test_float16_weights_are_found_behind_dequantize(planted):
    info = inspect_tflite(planted["paths"]["float16"])
    assert info["quantize_ops"]["DEQUANTIZE"] >= 4
    weights = [t for t in info["per_tensor"].values() if t["role"] == "weight"]
    assert len(weights) == 4 and all(t["dtype"] == "float16" for t in weights)
    assert info["params"] == planted["model"].count_params()
    assert info["macs"] == inspect_tflite(planted["paths"]["float32"])["macs"]


def test_sparse_encoded_tensors_densify_to_the_keras_kernel(planted):
    info = inspect_tflite(planted["paths"]["sparse"])
    dense_info = _by_shape(info, [10, 256])
    assert dense_info["sparse_encoded"] is True
    assert dense_info["bytes"] < 10 * 256 * 4  # only the non-zero blocks are stored
    arrays = tensor_arrays(planted["paths"]["sparse"])
    (name,) = [n for n, t in info["per_tensor"].items() if t["shape"] == [10, 256]]
    np.testing.assert_array_equal(arrays[name], planted["kernels"]["dense"].T)
    assert info["sparsity"] == pytest.approx(_expected_sparsity(planted["kernels"]), abs=1e-9)
    assert "DENSIFY" not in {f["op"] for f in info["float_ops"]}


def test_pattern_counts_groups_along_the_last_axis():
    nonzero = np.array([[1, 1, 0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 1, 1, 1, 1]], dtype=bool)
    assert pattern_m_by_n(nonzero) == 0.5
    assert pattern_m_by_n(np.array([[1, 1, 1, 0, 0, 1]], dtype=bool)) == 0.5  # trailing partial group


def test_densify_handles_a_block_sparse_csr_layout():
    from types import SimpleNamespace as NS

    # 4x4 matrix in 2x2 blocks: block-row 0 holds block-column 1, block-row 1 holds block-column 0.
    dims = [NS(format=0, denseSize=2, arraySegments=None, arrayIndices=None),
            NS(format=1, denseSize=0, arraySegments=NS(values=[0, 1, 2]), arrayIndices=NS(values=[1, 0])),
            NS(format=0, denseSize=2, arraySegments=None, arrayIndices=None),
            NS(format=0, denseSize=2, arraySegments=None, arrayIndices=None)]
    sparsity = NS(traversalOrder=[0, 1, 2, 3], blockMap=[0, 1], dimMetadata=dims)
    dense = densify(np.arange(1, 9, dtype=np.float32), [4, 4], sparsity)
    expected = np.array([[0, 0, 1, 2], [0, 0, 3, 4], [5, 6, 0, 0], [7, 8, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(dense, expected)


def test_custom_ops_are_listed(planted):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(planted["paths"]["float32"].read_bytes()), 0)
    reshape = next(c for c in model.operatorCodes
                   if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.RESHAPE)
    reshape.builtinCode = reshape.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    reshape.customCode = "MyReshape"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    info = inspect_tflite(bytes(builder.Output()))
    assert info["custom_ops"] == {"MyReshape": 1}
    assert info["ops"]["CUSTOM:MyReshape"] == 1


@pytest.mark.parametrize("cut", [0, 7, 64, 0.5, -9])
def test_truncated_file_is_a_one_line_input_error(planted, cut):
    data = planted["paths"]["int8"].read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    with pytest.raises(InputError, match="TFLite") as caught:
        inspect_tflite(data[:end])
    assert "\n" not in str(caught.value)


def test_missing_and_foreign_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        inspect_tflite(tmp_path / "absent.tflite")
    text = tmp_path / "model.tflite"
    text.write_text("this is a recipe, not a flatbuffer\n")
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        inspect_tflite(text)


def test_cli_inspect_json_and_exit_codes(planted, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(planted["paths"]["int8"]), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["int8_op_coverage"] == 1.0
    result = runner.invoke(cli, ["inspect", str(planted["paths"]["float32"])])
    assert result.exit_code == 0 and "weight sparsity" in result.output and "conv" in result.output.lower()
    result = runner.invoke(cli, ["inspect", str(tmp_path / "absent.tflite")])
    assert result.exit_code == 2
    assert "file not found" in result.stderr and "Traceback" not in result.output


def test_any_m_by_n_pattern_can_be_checked(planted):
    # The 1x1 convolution's planted pattern keeps 2 of every 4: 2:4 holds, 1:4 and 2:8 do not.
    info = inspect_tflite(planted["paths"]["float32"], pattern=(1, 4))
    assert info["pattern"]["structure"] == "1:4"
    assert _by_shape(info, [16, 1, 1, 8])["pattern_share"] == 0.0
    assert _by_shape(info, [16, 1, 1, 8])["pattern_2_4"] == 1.0
    four_of_eight = inspect_tflite(planted["paths"]["float32"], pattern=(4, 8))
    assert _by_shape(four_of_eight, [16, 1, 1, 8])["pattern_share"] == 1.0


def test_the_inspect_table_gives_an_int8_files_input_and_output_scale_and_zero_point(planted):
    info = inspect_tflite(planted["paths"]["int8"])
    quantized = info["input_details"][0]["quantization"], info["output_details"][0]["quantization"]
    text = CliRunner().invoke(cli, ["inspect", str(planted["paths"]["int8"])]).output
    header = next(line for line in text.splitlines() if line.startswith("input/output"))
    assert header.split()[-3:] == ["scale", "zero", "point"]
    assert f"zero point {quantized[0]['zero_point']}" in text.splitlines()[2]  # the summary's input line too
    for kind, q in zip(("input", "output"), quantized, strict=True):
        row = next(line for line in text.splitlines() if line.startswith(kind + " "))
        assert f"{q['scale']:.6g}" in row.split() and str(q["zero_point"]) == row.split()[-1]
    float_text = CliRunner().invoke(cli, ["inspect", str(planted["paths"]["float32"])]).output
    row = next(line for line in float_text.splitlines() if line.startswith("input "))
    assert row.split()[-2:] == ["-", "-"]  # a float input has no scale
