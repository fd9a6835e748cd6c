"""A subclassed tf_keras model is asked what it can do before any training: a stage that wraps its
layers is refused in one line naming the stage and the fix, and nothing is trained first."""

from __future__ import annotations

import io
import sys
import textwrap

import numpy as np
import pytest

import edgeopt.train
from edgeopt.errors import InputError
from edgeopt.pipeline import prepare
from edgeopt.progress import Progress
from edgeopt.recipe import parse_recipe

pytestmark = pytest.mark.integration

MODULE = '''
from edgeopt.kerasapi import keras


@keras.utils.register_keras_serializable(package="edgeopt_capabilities")
class TinySubclassed(keras.Model):
    """A digits classifier with its own call: TFMOT cannot wrap it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flat = keras.layers.Flatten()
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.flat(x))
'''


@pytest.fixture(scope="module")
def subclassed(tmp_path_factory):
    """capabilities_subclassed.py and a SavedModel (with Keras metadata) of its subclassed model."""
    folder = tmp_path_factory.mktemp("subclassed")
    (folder / "capabilities_subclassed.py").write_text(textwrap.dedent(MODULE))
    sys.path.insert(0, str(folder))
    try:
        from capabilities_subclassed import TinySubclassed

        model = TinySubclassed(name="tiny")
        model(np.zeros((1, 8, 8, 1), np.float32))
        model.save(folder / "sub_savedmodel", save_format="tf")
        yield folder / "sub_savedmodel"
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained before the refusal")

    monkeypatch.setattr(edgeopt.train, "fit", refuse)


def recipe(path, stages, epochs=2):
    return parse_recipe({"model": str(path), "data": "digits", "train": {"epochs": epochs}, "stages": stages,
                         "custom_objects": ["capabilities_subclassed"], "trust_model": True})


@pytest.mark.parametrize(("stage", "field"), [
    ({"kind": "prune", "target_sparsity": 0.5, "epochs": 1}, "stages[0] prune"),
    ({"kind": "quantize", "mode": "qat", "epochs": 1}, "stages[0] quantize"),
])
def test_a_stage_that_wraps_is_refused_before_any_training(subclassed, no_training, monkeypatch, stage,
                                                           field):
    monkeypatch.syspath_prepend(str(subclassed.parent))
    log = io.StringIO()
    with pytest.raises(InputError) as refused, Progress(stream=log) as progress:
        prepare(recipe(subclassed, [stage]), progress)
    message = str(refused.value)
    assert message.startswith(f"{field}: {subclassed} is a subclassed Keras model (TinySubclassed")
    assert "keras.Sequential" in message and "\n" not in message
    assert "training" not in log.getvalue()


def test_a_subclassed_model_without_known_inputs_is_refused_in_one_line(subclassed, no_training, monkeypatch):
    monkeypatch.syspath_prepend(str(subclassed.parent))
    with pytest.raises(InputError) as refused:
        prepare(recipe(subclassed, [{"kind": "quantize", "mode": "ptq"}], epochs=0))
    message = str(refused.value)
    assert message.startswith(f"model: {subclassed} (") and "inputs are not known" in message
    assert "\n" not in message
