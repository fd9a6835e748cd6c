"""The model-file checks read configurations as Keras does (a JSON parser), so no spelling hides a
Lambda, and configurations that are not a model's are refused in one line. No TensorFlow."""

from __future__ import annotations

import json
import zipfile

import pytest

from edgeopt.errors import InputError
from edgeopt.modelfile import KERAS_ZIP, check_no_code, code_layers, custom_classes, read_config


def _parsed(text: str):
    return [json.loads(text)]


@pytest.mark.parametrize("text", [
    '{"class_name": "L\\u0061mbda", "config": {"name": "a"}}',
    '{"class_name" : "Lambda", "config": {"name": "a"}}',
    '{"cl\\u0061ss_name": "Lambda", "config": {"name": "a"}}',
    '{"class_name": "Foo", "registered_name": "Lambda", "config": {"name": "a"}}',
    '{"class_name": "lambda_layer.Lambda", "module": "tf_keras.src.layers.core", "config": {"name": "a"}}',
    '{"class_name": "Wrap", "config": {"name": "a", "fn": "AAAA", "fn_type": "lambda"}}',
    '{"class_name": "__lambda__", "config": {"name": "a", "value": {}}}',
    '{"class_name": "Functional", "config": {"name": "m", "layers": [{"class_name": "TimeDistributed", '
    '"config": {"name": "w", "layer": {"class_name": "Functional", "config": {"name": "a", "layers": '
    '[{"class_name": "Lambda", "config": {"name": "a"}}]}}}}]}}',
])
def test_every_spelling_and_nesting_of_code_is_found(text):
    assert [layer.name for layer in code_layers(_parsed(text))] == ["a"]


def test_plain_layers_are_not_code():
    text = ('{"class_name": "Functional", "config": {"name": "m", "layers": [{"class_name": "Dense", '
            '"module": "keras.layers", "config": {"name": "d", "activation": "relu"}}]}}')
    assert code_layers(_parsed(text)) == [] and custom_classes(_parsed(text)) == []


def test_a_class_from_another_module_is_custom():
    text = '{"class_name": "Evil", "module": "os", "config": {"name": "x"}}'
    assert custom_classes(_parsed(text)) == ["Evil"]


def _keras_zip(tmp_path, config) -> object:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "2.21.0"}))
    return path


@pytest.mark.parametrize("config, problem", [
    ([], "is a JSON list"),
    ("a string", "is a JSON string"),
    (7, "is a JSON number"),
    ({"config": {}}, "has no class_name"),
    ({"class_name": "Functional", "config": {"layers": "dense"}}, "has layers that are a JSON string"),
    ({"class_name": "Functional", "config": {"layers": [3]}}, "has a layer that is not an object"),
    ({"class_name": "Functional", "config": 5}, "has a config that is a JSON number"),
])
def test_a_configuration_that_is_not_a_models_is_one_line(tmp_path, config, problem):
    path = _keras_zip(tmp_path, config)
    with pytest.raises(InputError, match=problem):
        read_config(path, KERAS_ZIP)


def test_a_module_keras_would_import_is_refused_without_trust(tmp_path):
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "Evil", "module": "antigravity", "config": {"name": "x"}}]}}
    with pytest.raises(InputError, match="uses custom classes Evil.*--custom-objects"):
        check_no_code(_keras_zip(tmp_path, config), trust=False, where="model")
