"""Intake is a wing: one registry of data sources, one of model loaders (no TensorFlow here).

A fake data source and a fake model loader, each registered with one line, are used end to end through
:func:`edgeopt.data.load_dataset` and :func:`edgeopt.loading.load_model`, and what the loaded model can
do is asked of its :class:`~edgeopt.loading.LoadedModel`, never of its kind.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data import CLASSIFICATION, SOURCES, Dataset, load_dataset, source_for
from edgeopt.errors import InputError
from edgeopt.loading import LOADERS, LoadedModel, Loader, Port, can_train, check_capabilities, load_model
from edgeopt.recipe import parse_recipe
from edgeopt.sources import DataSpec, Source


def blobs(name: str) -> Dataset:
    """Two classes of 4-feature samples, a fixed split."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return Dataset(name, CLASSIFICATION, x[:30], y[:30], x[30:], y[30:])


class FakeModel:
    """Stands for a model of a kind edgeopt does not know: no Keras, no TensorFlow."""

    def __init__(self, units: int) -> None:
        self.units = units


def load_fake(recipe, data):
    """A loader's whole contract: the loaded model, what it can do, and the data matched with it."""
    data = data.for_model(["features"], ["classes"], f"model: {recipe.model}")
    model = FakeModel(data.output_dim)
    return LoadedModel(model, "fake", trainable=False, wrappable=False, graph=True,
                       inputs=(Port("features", data.input_shape),), outputs=(Port("classes", (2,)),),
                       file={"source": "fake"},
                       limits="is a fake model: edgeopt converts it, while {what} needs a Keras model"), data


@pytest.fixture
def fake_source(monkeypatch):
    monkeypatch.setitem(SOURCES, "fake", Source("fake", claims=lambda name: name == "fake:blobs", load=blobs))


@pytest.fixture
def fake_loader(monkeypatch):
    monkeypatch.setitem(LOADERS, "fake", Loader("fake", lambda name: name == "fake-net", load_fake, False))


def test_a_registered_source_and_loader_are_used_end_to_end(fake_source, fake_loader):
    recipe = parse_recipe({"model": "fake-net", "data": "fake:blobs",
                           "stages": [{"kind": "quantize", "mode": "ptq"}]})
    data = load_dataset(recipe.data)
    assert data.name == "fake:blobs" and data.n_test == 10 and source_for("fake:blobs") is SOURCES["fake"]
    loaded, fitted = load_model(recipe, data)
    assert isinstance(loaded.model, FakeModel) and loaded.model.units == 2
    assert (loaded.kind, loaded.trainable, loaded.wrappable, loaded.graph) == ("fake", False, False, True)
    assert loaded.inputs == (Port("features", (4,)),) and loaded.outputs == (Port("classes", (2,)),)
    assert loaded.file == {"source": "fake"} and fitted.n_test == 10
    assert not can_train("fake-net")
    check_capabilities(recipe, loaded)  # post-training quantization needs no training: accepted


def test_what_a_loaded_model_cannot_do_is_refused_from_its_type(fake_source, fake_loader):
    recipe = parse_recipe({"model": "fake-net", "data": "fake:blobs",
                           "stages": [{"kind": "prune", "target_sparsity": 0.5}]})
    loaded, _ = load_model(recipe, load_dataset(recipe.data))
    with pytest.raises(InputError, match=r"stages\[0\] prune: fake-net is a fake model: edgeopt converts it, "
                                         r"while prune needs a Keras model"):
        check_capabilities(recipe, loaded)


def test_every_built_in_kind_sits_in_the_registries():
    assert list(SOURCES) == ["builtin", "loader", "images", "csv", "npz"]
    assert list(LOADERS) == ["zoo", "savedmodel", "keras3", "tf_keras"]
    assert source_for("digits") is SOURCES["builtin"] and source_for("no-such-set") is None
    assert source_for(DataSpec(loader="pkg.mod:load")) is SOURCES["loader"]
    assert can_train("digits_cnn") and can_train("no/such/model.keras")


def test_without_a_claiming_source_or_loader_the_messages_are_unchanged(tmp_path):
    with pytest.raises(InputError, match="data: unknown dataset 'fake:blobs'"):
        load_dataset("fake:blobs")
    recipe = parse_recipe({"model": "fake-net", "data": "digits"})
    with pytest.raises(InputError, match="model: 'fake-net' is neither a zoo model"):
        load_model(recipe, blobs("digits"))
