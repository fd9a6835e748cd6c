"""Named arrays for models with several inputs or outputs: reading, checking, matching, reporting.

No TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data import MULTI_OUTPUT, load_dataset
from edgeopt.errors import InputError
from edgeopt.report.text import render_table
from edgeopt.sources import from_arrays
from edgeopt.types import Metric, Report, Variant


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.random((n, 8, 8, 1)), "features": rng.random((n, 3)),
            "label": np.arange(n) % 3, "angle": rng.random((n, 2))}


def _npz(path, train, test, *, skip=(), rename=None):
    rename = rename or {}
    arrays = {}
    for split, part in (("train", train), ("test", test)):
        for kind, names in (("x", ("image", "features")), ("y", ("label", "angle"))):
            arrays.update({f"{kind}_{split}/{rename.get(n, n)}": part[n] for n in names
                           if f"{kind}_{split}/{n}" not in skip})
    np.savez(path, **arrays)
    return str(path)


def test_an_npz_of_named_arrays_gives_each_output_its_own_task(tmp_path):
    data = load_dataset(_npz(tmp_path / "d.npz", _arrays(30), _arrays(10, 1)))
    assert data.task == MULTI_OUTPUT
    assert data.tasks == {"label": "classification", "angle": "regression"}
    assert data.input_names == ("image", "features") and data.outputs == ("label", "angle")
    assert data.x_train["image"].dtype == np.float32 and data.y_train["label"].dtype == np.int64
    described = data.describe()
    assert described["inputs"] == {"image": [8, 8, 1], "features": [3]}
    assert described["outputs"]["label"] == {"task": "classification", "output_dim": 3}
    assert described["primary_metric"] == "accuracy/label"


def test_named_x_and_y_are_split_alike_with_the_seed(tmp_path):
    arrays = _arrays(50)
    np.savez(tmp_path / "s.npz", **{f"x/{n}": arrays[n] for n in ("image", "features")},
             **{f"y/{n}": arrays[n] for n in ("label", "angle")})
    data = load_dataset(str(tmp_path / "s.npz"))
    order = np.random.default_rng(0).permutation(50)
    for name in ("image", "features"):
        np.testing.assert_array_equal(data.x_test[name], arrays[name][order[:10]].astype(np.float32))
    np.testing.assert_array_equal(data.y_test["label"], arrays["label"][order[:10]])
    assert data.preprocessing["split"] == {"test_split": 0.2, "seed": 0, "stratified": False}


def test_matching_puts_the_data_in_the_models_order_and_unwraps_one_output():
    arrays = _arrays(20)
    data = from_arrays("d", "loader", {"image": arrays["image"], "features": arrays["features"]},
                       {"label": arrays["label"]})
    matched = data.for_model(["features", "image"], ["label"], "model: m")
    assert matched.input_names == ("features", "image")
    assert isinstance(matched.y_train, np.ndarray) and matched.task == "classification"
    assert matched.describe()["output_dim"] == 3


@pytest.mark.parametrize("inputs, outputs, expected", [
    (["image", "feats"], ["label", "angle"],
     "model: m has inputs image, feats but data 'd' has inputs image, features"),
    (["image", "features"], ["label"], "model: m has output label but data 'd' has outputs label, angle"),
    ([], [], "model: m has one input but data 'd' has inputs image, features"),
])
def test_names_that_differ_are_refused_listing_both_sides(inputs, outputs, expected):
    arrays = _arrays(20)
    data = from_arrays("d", "loader", {n: arrays[n] for n in ("image", "features")},
                       {n: arrays[n] for n in ("label", "angle")})
    with pytest.raises(InputError) as error:
        data.for_model(inputs, outputs, "model: m")
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)


def test_one_unnamed_array_for_a_model_of_two_inputs_says_how_to_name_them():
    arrays = _arrays(20)
    data = from_arrays("d", "loader", arrays["image"], arrays["label"])
    with pytest.raises(InputError, match=r"has inputs image, features but data 'd' has one unnamed input "
                                         r"array; name the arrays by the model's inputs \(x_train/<name>"):
        data.for_model(["image", "features"], ["label"], "model: m")


@pytest.mark.parametrize("skip, rename, message", [
    (("x_test/features",), None, "x_train has arrays image, features but x_test has arrays image"),
    ((), {"angle": "angle/"}, "has no name after"),
])
def test_named_npz_arrays_that_do_not_pair_up_are_refused(tmp_path, skip, rename, message):
    path = _npz(tmp_path / "d.npz", _arrays(20), _arrays(10, 1), skip=skip)
    if rename:
        arrays = dict(np.load(path))
        arrays["y_train/"] = arrays.pop("y_train/angle")
        np.savez(path, **arrays)
    with pytest.raises(InputError, match=message):
        load_dataset(path)


def test_an_array_given_both_unnamed_and_named_is_refused(tmp_path):
    path = _npz(tmp_path / "d.npz", _arrays(20), _arrays(10, 1))
    arrays = dict(np.load(path))
    arrays["x_train"] = arrays["x_train/image"]
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="x_train is given both unnamed and named"):
        load_dataset(path)


def test_inputs_of_different_sample_counts_are_refused_naming_them(tmp_path):
    train = _arrays(20)
    train["features"] = train["features"][:15]
    with pytest.raises(InputError, match=r"the arrays of x_train hold different numbers of samples "
                                         r"\(image 20, features 15\)"):
        load_dataset(_npz(tmp_path / "d.npz", train, _arrays(10, 1)))


def test_one_task_for_several_outputs_is_refused():
    arrays = _arrays(20)
    with pytest.raises(InputError, match="data.task names one task, but the data has 2 outputs"):
        from_arrays("d", "loader", arrays["image"], {n: arrays[n] for n in ("label", "angle")},
                    task="regression")


def _multi_report() -> Report:
    prov = "measured"

    def variant(name, acc, mae):
        return Variant(name=name, format="float32", status="ok", size_bytes=20_000, gzip_bytes=9_000,
                       sparsity=0.5,
                       metrics={"accuracy/label": Metric.of("accuracy/label", acc, prov),
                                "mae/angle": Metric.of("mae/angle", mae, prov, "degrees"),
                                "rmse/angle": Metric.of("rmse/angle", mae * 1.3, prov, "degrees")})

    return Report(name="two-heads", task=MULTI_OUTPUT, status="ok",
                  data={"outputs": {"label": {"task": "classification"}, "angle": {"task": "regression"}},
                        "primary_metric": "accuracy/label"},
                  variants=(variant("trained_float32", 0.95, 1.5), variant("int8", 0.9412, 1.61234)))


def test_a_multi_output_report_is_judged_by_its_first_outputs_metric_with_directions():
    report = _multi_report()
    assert report.primary_metric() == "accuracy/label"
    int8 = report.variant("int8")
    assert int8.metric("accuracy/label").unit == "fraction" and int8.metric("accuracy/label").higher_is_better
    assert int8.metric("mae/angle").higher_is_better is False
    assert report.replace(data={}).primary_metric() == "accuracy/label"  # older report: from the metrics


def test_the_terminal_table_shows_every_outputs_metric_within_100_columns():
    lines = render_table(_multi_report()).splitlines()
    assert "accuracy/label" in lines[1] and "mae/angle" in lines[1]
    assert max(map(len, lines[1:])) <= 100
