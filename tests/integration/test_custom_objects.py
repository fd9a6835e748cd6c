"""A model with custom layers loads from the command line when the user names the module that defines
them (--custom-objects) and trusts it (--trust-model); without either, one line says what to do."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from edgeopt.cli import cli

pytestmark = pytest.mark.integration

MODULE = '''
from edgeopt.kerasapi import keras


class ChannelGain(keras.layers.Layer):
    """A learned gain per channel: a layer TFMOT knows nothing about."""

    def build(self, input_shape):
        self.gain = self.add_weight(name="gain", shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.gain
'''
QUICK = ["--set", "benchmark.runs=5", "--set", "benchmark.warmup=1", "--set", "benchmark.min_seconds=0.05",
         "--quiet"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """mylayers.py and a digits model using its layer, saved by a separate Python: this process has
    never seen the class, as a user's fresh shell has not."""
    folder = tmp_path_factory.mktemp("custom")
    (folder / "mylayers.py").write_text(MODULE)
    build = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(folder)!r})
        from edgeopt.kerasapi import keras
        from edgeopt.data import load_dataset
        from mylayers import ChannelGain
        data = load_dataset("digits")
        keras.utils.set_random_seed(0)
        inputs = keras.Input(data.input_shape)
        x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
        x = ChannelGain(name="gain")(x)
        model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
        model.save({str(folder / 'gain.keras')!r})
    """)
    subprocess.run([sys.executable, "-c", build], check=True, capture_output=True)
    assert importlib.util.find_spec("mylayers") is None
    return folder


def _compress(saved, out, *extra):
    args = ["compress", "--model", str(saved / "gain.keras"), "--data", "digits",
            "--preset", "prune-qat-int8", "--set", "stages.0.epochs=1", "--set", "stages.1.epochs=1",
            # one epoch per stage on a 2-epoch model costs a few points: this file tests loading, not that
            "--set", "budgets.max_accuracy_drop=0.2",
            "--out", str(out), *QUICK, *extra]
    return CliRunner().invoke(cli, args)


def _one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_without_the_module_the_unknown_layer_error_says_what_to_pass(saved, tmp_path):
    result = _compress(saved, tmp_path / "out")
    assert result.exit_code == 2
    assert "--custom-objects MODULE" in _one_line(result) and not (tmp_path / "out").exists()


def test_the_module_is_not_imported_without_trust(saved, tmp_path):
    result = _compress(saved, tmp_path / "out", "--custom-objects", str(saved / "mylayers.py"))
    assert result.exit_code == 2
    line = _one_line(result)
    assert "custom_objects: importing" in line and "--trust-model" in line
    assert "edgeopt_custom_mylayers" not in sys.modules


def test_a_module_that_raises_is_one_line(saved, tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU here')\n")
    result = _compress(saved, tmp_path / "out", "--custom-objects", str(tmp_path / "broken.py"),
                       "--trust-model")
    assert result.exit_code == 2
    assert "importing" in _one_line(result) and "RuntimeError: no GPU here" in result.stderr


def test_with_the_module_and_trust_the_custom_layer_is_compressed_around(saved, tmp_path):
    from edgeopt.kerasapi import keras

    before = dict(keras.utils.get_custom_objects())
    try:
        result = _compress(saved, tmp_path / "out", "--custom-objects", str(saved / "mylayers.py"),
                           "--trust-model", "--json")
    finally:  # the registration is process-wide: leave other tests the registry they had
        keras.utils.get_custom_objects().clear()
        keras.utils.get_custom_objects().update(before)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["recipe"]["custom_objects"] == [str(saved / "mylayers.py")]
    prune = report["stages"][0]
    assert prune["skipped_layers"] == {"ChannelGain(custom layer)": 1}  # left out of pruning, and listed
    int8 = {v["name"]: v for v in report["variants"]}["int8"]
    assert int8["status"] == "ok" and int8["inspect"]["float_ops"] == []
