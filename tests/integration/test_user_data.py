"""A user's own data end to end: an image folder and a CSV file through compress, measured in the .tflite."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import edgeopt

pytestmark = pytest.mark.integration
QUICK = ["train.epochs=3", "stages=[]", "export=[float32, int8]", "benchmark.runs=5", "benchmark.warmup=1",
         "benchmark.min_seconds=0.05"]


def test_an_image_folder_compresses_with_its_preprocessing_in_the_report(tmp_path):
    rng = np.random.default_rng(0)
    for label, level in (("dark", 30), ("light", 220)):
        (tmp_path / "shapes" / label).mkdir(parents=True)
        for i in range(30):
            pixels = np.clip(level + rng.normal(0, 25, (10, 10)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(tmp_path / "shapes" / label / f"{i}.png")
    data = f"{{path: {tmp_path / 'shapes'}, image_size: [8, 8], color_mode: grayscale, scale: 0.003921568}}"
    recipe = edgeopt.load_recipe(None, ["model=digits_cnn", f"data={data}", *QUICK, "train.epochs=25",
                                        "train.early_stopping=null", "train.batch_size=8"])
    result = edgeopt.compress(edgeopt.prepare(recipe))
    report = result.report
    assert report.ok and report.data["input_shape"] == [8, 8, 1] and report.data["output_dim"] == 2
    assert report.data["preprocessing"]["classes"] == ["dark", "light"]
    assert report.variant("int8").metrics["accuracy"].value >= 0.9  # two classes far apart in brightness


def test_a_csv_regression_compresses_and_reports_mae(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=300)
    rows = ["a,b,c,target"] + [f"{a:.5f},{b:.5f},{c:.5f},{t:.5f}" for (a, b, c), t in zip(x, y, strict=True)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    data = f"data={{path: {tmp_path / 't.csv'}, label: target}}"
    recipe = edgeopt.load_recipe(None, ["model=facepose_mlp", data, *QUICK])
    report = edgeopt.compress(edgeopt.prepare(recipe)).report
    assert report.task == "regression" and report.primary_metric() == "mae"
    assert report.data["preprocessing"]["features"] == ["a", "b", "c"]
    assert report.variant("float32").metrics["mae"].value < float(np.mean(np.abs(y - y.mean())))


def test_a_keras3_model_compresses_and_the_report_says_how_it_was_loaded(tmp_path):
    from edgeopt.keras3 import keras3_module

    k3 = keras3_module()
    inputs = k3.Input(shape=(8, 8, 1))
    x = k3.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = k3.layers.BatchNormalization()(x)
    outputs = k3.layers.Dense(10)(k3.layers.Flatten()(x))
    k3.Model(inputs, outputs).save(tmp_path / "mine.keras")
    recipe = edgeopt.load_recipe(None, [f"model={tmp_path / 'mine.keras'}", "data=digits", *QUICK,
                                        "train.epochs=1"])
    report = edgeopt.compress(edgeopt.prepare(recipe)).report
    facts = report.extra["model_file"]
    assert facts["source"] == "keras3" and facts["max_abs_diff"] <= facts["tolerance"]
    assert facts["verified_on"] == "samples"  # the user's own training inputs, not random ones
    assert facts["tolerance"] == pytest.approx(1e-5 * max(1.0, facts["output_scale"]))
    assert report.ok and report.variant("int8").ok


def test_a_keras3_model_for_other_inputs_is_refused_before_its_rebuild_is_compared(tmp_path):
    from edgeopt.errors import InputError
    from edgeopt.keras3 import keras3_module

    k3 = keras3_module()
    inputs = k3.Input(shape=(4, 4, 1))
    k3.Model(inputs, k3.layers.Dense(10)(k3.layers.Flatten()(inputs))).save(tmp_path / "small.keras")
    recipe = edgeopt.load_recipe(None, [f"model={tmp_path / 'small.keras'}", "data=digits", *QUICK])
    with pytest.raises(InputError, match=r"takes inputs of shape \(4, 4, 1\) but the data's samples have "
                                         r"shape \(8, 8, 1\)"):
        edgeopt.prepare(recipe)


def test_a_saved_softmax_model_is_the_reference_as_given_and_fine_tuned_on_probabilities(tmp_path):
    from edgeopt import train
    from edgeopt.data import load_dataset
    from edgeopt.kerasapi import keras

    data = load_dataset("digits")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=5, verbose=0)
    model.save(tmp_path / "mine.keras")
    own = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), axis=1) == data.y_test))
    assert train.head_activation(model) == "softmax"

    seen = []
    real = train.loss_and_metrics

    def spy(task, head="linear"):
        loss, metrics = real(task, head)
        seen.append(loss.get_config()["from_logits"])
        return loss, metrics

    overrides = [f"model={tmp_path / 'mine.keras'}", "data=digits", "benchmark.runs=5", "benchmark.warmup=1",
                 "benchmark.min_seconds=0.05", "stages=[{kind: prune, target_sparsity: 0.5, epochs: 2}]",
                 "export=[float32]"]
    recipe = edgeopt.load_recipe(None, overrides)  # no train section: a saved model is not retrained
    assert recipe.train.epochs == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "loss_and_metrics", spy)
        report = edgeopt.compress(edgeopt.prepare(recipe)).report
    reference = report.reference
    assert report.training["epochs_run"] == 0 and "as given" in reference.note
    assert reference.metrics["accuracy"].value == pytest.approx(own, abs=1 / len(data.y_test))
    assert seen and not any(seen)  # the prune fine-tune used a cross-entropy on probabilities
    # half the weights pruned for two epochs on probabilities keeps the model near its own accuracy
    assert report.variant("float32").metrics["accuracy"].value >= own - 0.05


def test_a_saved_model_fine_tuned_on_request_is_compared_with_itself_as_given(tmp_path):
    from edgeopt.data import load_dataset
    from edgeopt.kerasapi import keras

    data = load_dataset("digits")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(10)])  # untrained: fine-tuning must change it
    model.save(tmp_path / "raw.keras")
    own = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), axis=1) == data.y_test))
    recipe = edgeopt.load_recipe(None, [f"model={tmp_path / 'raw.keras'}", "data=digits", "train.epochs=3",
                                        "stages=[]", "export=[float32]", *QUICK[3:]])
    result = edgeopt.compress(edgeopt.prepare(recipe))
    report = result.report
    assert report.ok, report.failures()
    assert report.reference.name == "original" and report.variant("trained_float32") is None
    assert "original.tflite" in result.files and "fine-tuned it for 3 epochs" in report.reference.note
    # the reference is the file as given, before the three epochs; the export is the fine-tuned model
    assert report.reference.metrics["accuracy"].value == pytest.approx(own, abs=1 / len(data.y_test))
    assert report.variant("float32").metrics["accuracy"].value > own + 0.2


def test_a_model_that_rescales_its_own_inputs_takes_qat_and_exports_int8(tmp_path):
    from edgeopt.data import load_dataset
    from edgeopt.kerasapi import keras

    data = load_dataset("digits")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.input_shape)
    x = keras.layers.Rescaling(0.5, offset=0.1)(inputs)  # TFMOT's 8-bit registry has no Rescaling
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu")(x))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    model.save(tmp_path / "scaled.keras")
    stages = "stages=[{kind: prune, target_sparsity: 0.5, epochs: 1}, {kind: quantize, mode: qat, epochs: 1}]"
    recipe = edgeopt.load_recipe(None, [f"model={tmp_path / 'scaled.keras'}", "data=digits", stages,
                                        "export=[int8]", *QUICK[3:]])
    report = edgeopt.compress(edgeopt.prepare(recipe)).report
    assert report.ok, report.failures()
    int8 = report.variant("int8")
    assert int8.metrics["accuracy"].value >= report.reference.metrics["accuracy"].value - 0.05
