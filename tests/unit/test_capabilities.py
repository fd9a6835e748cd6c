"""What a loaded model can do is asked of its type, and each stage says what it needs of it.

:func:`edgeopt.loading.check_capabilities` refuses, before any training, a stage that wraps the model's
layers when the model cannot be wrapped (a subclassed Keras model), with one line naming the stage and
the fix; whether a model can be wrapped has one definition (:func:`edgeopt.techniques.base.wrappable`),
asked by the loaded model and by the techniques alike. The pipeline, repair and diagnose ask
``has_keras_model`` instead of testing the model object; tune's refusal comes from the loader's limits.
A run that trains nothing draws no training bar.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from edgeopt.data import CLASSIFICATION, Dataset
from edgeopt.errors import InputError
from edgeopt.loading import (
    GRAPH_LIMITS,
    LOADERS,
    LoadedModel,
    Loader,
    Port,
    check_capabilities,
    training_limits,
)
from edgeopt.progress import Progress
from edgeopt.recipe import parse_recipe
from edgeopt.techniques import TECHNIQUES
from edgeopt.techniques.base import StageContext, wrappable
from edgeopt.trainspec import TrainSpec

WRAPPING_STAGES = [
    ({"kind": "prune", "target_sparsity": 0.5}, "stages[0] prune"),
    ({"kind": "quantize", "mode": "qat"}, "stages[0] quantize"),
    ({"kind": "cluster", "clusters": 8}, "stages[0] cluster"),
    ({"kind": "prune_channels", "fraction": 0.25}, "stages[0] prune_channels"),
]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Subclassed:
    """Stands for a subclassed Keras model: trainable, but nothing TFMOT can wrap."""


def unwrappable() -> LoadedModel:
    return LoadedModel(Subclassed(), "fake", trainable=True, wrappable=False, graph=False,
                       inputs=(Port("", (4,)),), outputs=(Port("", (2,)),))


def recipe_with(*stages: dict, epochs: int = 0):
    return parse_recipe({"model": "sub.keras", "data": "digits", "train": {"epochs": epochs},
                         "stages": list(stages)})


def blobs() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return Dataset("blobs", CLASSIFICATION, x[:30], y[:30], x[30:], y[30:])


# -- check_capabilities: what each stage needs, asked of the loaded model ----------------------------


@pytest.mark.parametrize(("stage", "field"), WRAPPING_STAGES)
def test_a_stage_that_wraps_is_refused_for_a_model_that_cannot_be_wrapped(stage, field):
    with pytest.raises(InputError) as refused:
        check_capabilities(recipe_with(stage, epochs=3), unwrappable())
    message = str(refused.value)
    assert message.startswith(f"{field}: sub.keras is a subclassed Keras model (Subclassed")
    assert "keras.Model(inputs, outputs) or keras.Sequential" in message and "\n" not in message


@pytest.mark.parametrize("stages", [[], [{"kind": "quantize", "mode": "ptq"}]])
def test_training_and_post_training_quantization_need_no_wrapping(stages):
    check_capabilities(recipe_with(*stages, epochs=3), unwrappable())  # accepted: nothing wraps


def test_the_first_stage_that_needs_wrapping_is_the_one_named():
    recipe = recipe_with({"kind": "prune", "target_sparsity": 0.5}, {"kind": "quantize", "mode": "qat"})
    with pytest.raises(InputError, match=r"^stages\[0\] prune: "):
        check_capabilities(recipe, unwrappable())


def test_what_each_stage_needs_is_declared_by_its_technique():
    needs = {}
    for stage, _ in [*WRAPPING_STAGES, ({"kind": "quantize", "mode": "ptq"}, "")]:
        parsed = recipe_with(stage).stages[0]
        technique = TECHNIQUES[parsed.kind]
        needs[(parsed.kind, getattr(parsed, "mode", None))] = (technique.needs_training(parsed),
                                                              technique.needs_wrapping(parsed))
    assert needs == {("prune", None): (True, True), ("quantize", "qat"): (True, True),
                     ("cluster", None): (True, True), ("prune_channels", None): (True, True),
                     ("quantize", "ptq"): (False, False)}


def test_an_untrainable_model_is_still_refused_by_its_limits_first():
    graph = LoadedModel(object(), "fake", trainable=False, wrappable=False, graph=True,
                        limits="is a fake graph: edgeopt converts it, while {what} needs a Keras model")
    with pytest.raises(InputError, match=r"^stages\[0\] quantize: sub.keras is a fake graph: edgeopt "
                                         r"converts it, while quantize mode qat needs a Keras model$"):
        check_capabilities(recipe_with({"kind": "quantize", "mode": "qat"}), graph)
    with pytest.raises(InputError, match=r"^train.epochs: sub.keras is a fake graph"):
        check_capabilities(recipe_with(epochs=2), graph)
    check_capabilities(recipe_with({"kind": "quantize", "mode": "ptq"}), graph)


def test_tune_is_refused_with_the_loaders_own_limits(monkeypatch):
    monkeypatch.setitem(LOADERS, "fake", Loader("fake", lambda name: name == "fake-net", lambda r, d: None,
                                                trainable=False, wrappable=False,
                                                limits="is a fake net: edgeopt converts it, while {what} "
                                                       "needs its source"))
    why = training_limits("fake-net", "tune")
    assert why == "model: fake-net is a fake net: edgeopt converts it, while tune needs its source"
    assert training_limits("digits_cnn", "tune") is None
    assert "SavedModel without Keras metadata" in GRAPH_LIMITS  # the graph loader's reason lives there


# -- one definition of "wrappable", asked by the loaded model and by the techniques ------------------


def keras_models():
    from edgeopt.kerasapi import keras

    sequential = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(2)])
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    subclassed = Sub()
    subclassed(np.zeros((1, 4), np.float32))
    return sequential, functional, subclassed


def test_wrappable_is_one_definition_for_the_loaded_model_and_the_techniques():
    sequential, functional, subclassed = keras_models()
    assert [wrappable(m) for m in (sequential, functional, subclassed)] == [True, True, False]
    loaded = [LoadedModel.of_keras(m) for m in (sequential, functional, subclassed)]
    assert [m.wrappable for m in loaded] == [True, True, False]
    assert LoadedModel.of_keras(subclassed).has_keras_model

    ctx = StageContext(data=blobs(), train=TrainSpec(), seed=0, stage_index=2)
    qat = recipe_with({"kind": "quantize", "mode": "qat"}).stages[0]
    channels = recipe_with({"kind": "prune_channels", "fraction": 0.25}).stages[0]
    with pytest.raises(InputError, match=r"stages\[2\] quantize: TFMOT cannot wrap a subclassed model \(Sub"):
        TECHNIQUES["quantize"].apply(subclassed, qat, ctx)
    with pytest.raises(InputError, match=r"stages\[2\] prune_channels: channel pruning reads the graph"):
        TECHNIQUES["prune_channels"].apply(subclassed, channels, ctx)


# -- has_keras_model, asked by the pipeline, repair and diagnose ------------------------------------


def test_without_a_keras_model_there_are_no_heads_and_no_repair():
    from edgeopt import repair
    from edgeopt.pipeline import heads_of

    graph = LoadedModel(object(), "fake", trainable=False, wrappable=False, graph=True,
                        inputs=(Port("x", (4,)),), outputs=(Port("y", (2,)),))
    assert not graph.has_keras_model
    assert heads_of(graph, graph.model, blobs()) is None  # the model object is never read
    assert not repair.repairable(blobs(), graph)
    sequential, _, _ = keras_models()
    loaded = LoadedModel.of_keras(sequential)
    assert repair.repairable(blobs(), loaded)
    two_inputs = LoadedModel(sequential, "fake", trainable=True, wrappable=True, graph=False,
                             inputs=(Port("a", (2,)), Port("b", (2,))), outputs=(Port("y", (2,)),))
    assert not repair.repairable(blobs(), two_inputs)  # the ports are asked, not the model


def test_diagnose_refuses_a_model_without_keras_by_its_loaders_limits(monkeypatch, tmp_path):
    from edgeopt import diagnose

    path = tmp_path / "graph"
    path.mkdir()
    graph = LoadedModel(object(), "fake", trainable=False, wrappable=False, graph=True,
                        limits="is a fake graph: edgeopt converts it, while {what} needs a Keras model")
    monkeypatch.setattr(diagnose, "load_model", lambda recipe, data: (graph, data))
    monkeypatch.setattr(diagnose, "check_model_files", lambda recipe: None)
    recipe = parse_recipe({"model": str(path), "data": "digits"})
    with pytest.raises(InputError, match=r"^model: .*graph is a fake graph: edgeopt converts it, while "
                                         r"diagnose \(it names the layers\) needs a Keras model$"):
        diagnose.diagnose_recipe(recipe)


# -- a run that trains nothing draws no training bar ---------------------------------------------------


def test_no_bar_for_zero_epochs_and_one_for_some():
    stream = FakeTerminal()
    with Progress(stream=stream) as progress:
        progress.keras_callback("training nothing", 0)
        assert [task.description for task in progress._rich.tasks] == []
        progress.keras_callback("training something", 2)
        assert [task.description for task in progress._rich.tasks] == ["training something"]
    assert "0/0" not in stream.getvalue()


def test_a_ptq_only_run_shows_no_training_line_or_bar(tmp_path):
    from edgeopt.kerasapi import keras
    from edgeopt.pipeline import compress, prepare

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "tiny.keras")
    recipe = parse_recipe({"model": str(tmp_path / "tiny.keras"), "data": "digits", "train": {"epochs": 0},
                           "stages": [{"kind": "quantize", "mode": "ptq"}], "export": ["int8"],
                           "benchmark": {"runs": 2, "warmup": 1, "min_seconds": 0.01}})
    stream = FakeTerminal()
    with Progress(stream=stream) as progress:
        result = compress(prepare(recipe, progress), progress=progress)
        bars = [task.description for task in progress._rich.tasks]
    text = stream.getvalue()
    assert "stage 1/1: quantize" in text and "exporting int8" in text  # the run's own lines are there
    assert not any(bar.startswith("training") or bar == "quantize" for bar in bars), bars
    assert "training" not in text and "0/0" not in text
    assert result.report.training["epochs_run"] == 0
