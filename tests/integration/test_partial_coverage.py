"""Layers TFMOT cannot wrap are left out of prune and QAT and listed; the int8 file stays full-integer.

Saved digits models with a trusted Lambda or a registered custom layer run through ``compress`` with
a prune and a QAT stage: both stages list the layer they left out, the run completes, and the int8
export computes every op in int8 with int8 input and output (the converter calibrates what QAT did
not see). A Normalization layer is left out of prune and cluster likewise, and QAT quantizes its
output. A model whose every layer with weights is custom is refused in one line that suggests
``mode: ptq``, with nothing written.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

QUICK = ["train.epochs=0", "export=[int8]", "benchmark.runs=1", "benchmark.min_seconds=0",
         "benchmark.warmup=0"]
PRUNE = "{kind: prune, target_sparsity: 0.5, schedule: constant, epochs: 1}"
CLUSTER = "{kind: cluster, clusters: 8, epochs: 1}"
QAT = "{kind: quantize, epochs: 1}"
PRUNE_THEN_QAT = f"[{PRUNE}, {QAT}]"


def _compress(model, out, stages, *flags):
    sets = [f"model={model}", "data=digits", f"stages={stages}", *QUICK]
    args = ["compress", "--out", str(out), "--quiet", "--json", *flags]
    return CliRunner().invoke(cli, args + [arg for s in sets for arg in ("--set", s)])


def _trained(body, path, first=None):
    """A digits classifier with ``body(x)`` between a small convolution and the logits (and ``first``,
    a layer, before the convolution), fitted briefly."""
    from edgeopt.data import load_dataset
    from edgeopt.kerasapi import keras

    keras.utils.set_random_seed(0)
    data = load_dataset("digits")
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(first(inputs) if first else inputs)
    x = keras.layers.Flatten()(body(x))
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def custom_classes():
    """Custom tf_keras layers, registered as a user's module would register them on import."""
    from edgeopt.kerasapi import keras

    @keras.saving.register_keras_serializable(package="edgeopt_partial")
    class ChannelGain(keras.layers.Layer):
        """A learned gain per channel: weights TFMOT's registries do not know."""

        def build(self, input_shape):
            self.gain = self.add_weight(name="gain", shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.gain

    @keras.saving.register_keras_serializable(package="edgeopt_partial")
    class PlainDense(keras.layers.Layer):
        """A hand-written dense layer: a kernel no TFMOT wrapper accepts."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))

        def call(self, inputs):
            return inputs @ self.kernel

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return ChannelGain, PlainDense


def _report(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _assert_full_integer(report):
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    assert int8["status"] == "ok"
    info = int8["inspect"]
    assert info["float_ops"] == [] and info["int8_op_coverage"] == 1.0
    assert [d["dtype"] for d in info["input_details"] + info["output_details"]] == ["int8", "int8"]
    return info


def test_trusted_lambda_is_left_out_of_prune_and_qat_and_the_int8_file_is_full_integer(tmp_path):
    from edgeopt.kerasapi import keras

    path = _trained(lambda x: keras.layers.Lambda(lambda t: t * t, name="squared")(x), tmp_path / "lam.keras")
    report = _report(_compress(path, tmp_path / "out", PRUNE_THEN_QAT, "--trust-model"))
    prune, qat = report["stages"]
    for stage in (prune, qat):
        assert stage["skipped_layers"] == {"Lambda(user code)": 1}, stage["summary"]
        assert "1 Lambda(user code)" in stage["summary"]
    assert set(prune["achieved"]["per_layer_sparsity"]) == {"conv", "logits"}
    assert qat["achieved"]["calibrated_layers"] == ["squared"]
    info = _assert_full_integer(report)
    assert info["ops"].get("MUL")  # the Lambda's square, computed in int8
    assert {c["check"]: c["status"] for c in report["checks"]}["calibrated_layers"] == "ok"


def test_custom_layer_is_left_out_of_prune_and_qat_and_the_int8_file_is_full_integer(tmp_path,
                                                                                     custom_classes):
    channel_gain, _ = custom_classes
    path = _trained(lambda x: channel_gain(name="gain")(x), tmp_path / "custom.keras")
    report = _report(_compress(path, tmp_path / "out", PRUNE_THEN_QAT))
    prune, qat = report["stages"]
    for stage in (prune, qat):
        assert stage["skipped_layers"] == {"ChannelGain(custom layer)": 1}, stage["summary"]
    assert set(prune["achieved"]["per_layer_sparsity"]) == {"conv", "logits"}
    assert qat["achieved"]["calibrated_layers"] == ["gain"]
    _assert_full_integer(report)
    assert report["status"] == "ok"


def test_normalization_is_left_out_of_prune_and_cluster_and_quantized_at_its_output(tmp_path):
    from edgeopt.data import load_dataset
    from edgeopt.kerasapi import keras

    norm = keras.layers.Normalization(name="norm")  # in front, as a model normalizing its inputs has it
    norm.adapt(load_dataset("digits").x_train)
    path = _trained(lambda x: x, tmp_path / "norm.keras", first=norm)
    report = _report(_compress(path, tmp_path / "out", f"[{PRUNE}, {CLUSTER}, {QAT}]"))
    prune, cluster, qat = report["stages"]
    assert prune["skipped_layers"] == {"Normalization(TFMOT cannot prune it)": 1}
    assert cluster["skipped_layers"] == {"Normalization": 1}
    assert qat["skipped_layers"] == {} and "calibrated_layers" not in qat["achieved"]
    _assert_full_integer(report)
    assert report["status"] == "ok"


@pytest.fixture(scope="module")
def all_custom(tmp_path_factory, custom_classes):
    """A digits model whose only layer with weights is a custom one."""
    from edgeopt.kerasapi import keras

    _, plain_dense = custom_classes
    inputs = keras.Input((8, 8, 1))
    outputs = plain_dense(10, name="hand_dense")(keras.layers.Flatten()(inputs))
    path = tmp_path_factory.mktemp("model") / "all_custom.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.mark.parametrize("stage", [PRUNE, CLUSTER, QAT], ids=["prune", "cluster", "quantize"])
def test_a_model_with_nothing_to_wrap_is_refused_in_one_line_suggesting_ptq(all_custom, tmp_path, stage):
    out = tmp_path / "out"
    result = _compress(all_custom, out, f"[{stage}]")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    kind = stage.split(",")[0].removeprefix("{kind: ")
    assert f"stages[0] {kind}:" in lines[0] and "hand_dense: PlainDense(custom layer)" in lines[0]
    assert "mode: ptq" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
