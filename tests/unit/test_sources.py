"""The user's own data: image folders, CSV, a named loader and a single x/y .npz, and their bad inputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from edgeopt.data import load_dataset
from edgeopt.errors import InputError
from edgeopt.sources import DataSpec


def _images(folder, classes=("cat", "dog"), per_class=5, size=(12, 10)):
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(0, 20, (size[1], size[0], 3), dtype=np.uint8)
            pixels = np.full((size[1], size[0], 3), 40 + 150 * index, np.uint8) + noise
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    return folder


def test_a_folder_of_class_folders_is_read_resized_and_split(tmp_path):
    _images(tmp_path / "pets", per_class=10)
    data = load_dataset(DataSpec(path=str(tmp_path / "pets"), image_size=(8, 6), color_mode="grayscale",
                                 scale=1 / 255))
    assert data.task == "classification" and data.input_shape == (8, 6, 1) and data.output_dim == 2
    assert len(data.x_train) == 16 and len(data.x_test) == 4  # stratified 80/20, seeded
    assert set(data.y_test.tolist()) == {0, 1} and data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert data.describe()["preprocessing"]["classes"] == ["cat", "dog"]
    assert data.describe()["preprocessing"]["image_size"] == [8, 6]


def test_a_plain_folder_path_defaults_to_the_first_images_size_and_rgb(tmp_path):
    data = load_dataset(str(_images(tmp_path / "pets")))
    assert data.input_shape == (10, 12, 3) and data.x_train.max() > 1  # 0-255 unless scaled


def test_train_and_test_folders_are_the_split(tmp_path):
    _images(tmp_path / "set" / "train", per_class=4)
    _images(tmp_path / "set" / "test", per_class=2)
    data = load_dataset(str(tmp_path / "set"))
    assert len(data.x_train) == 8 and len(data.x_test) == 4 and "split" not in data.preprocessing


def test_a_csv_with_text_labels_is_classification_with_named_classes(tmp_path):
    rows = ["a,b,species"] + [f"{i},{i % 3},{'xy'[i % 2]}" for i in range(20)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    spec = DataSpec(path=str(tmp_path / "t.csv"), label="species")
    data = load_dataset(spec)
    assert data.task == "classification" and data.input_shape == (2,)
    assert data.preprocessing["classes"] == ["x", "y"] and data.preprocessing["features"] == ["a", "b"]


def test_a_csv_with_float_labels_is_regression(tmp_path):
    rows = ["f1,f2,label"] + [f"{i},{i * 2},{i * 0.5 + 0.25}" for i in range(30)]
    (tmp_path / "r.csv").write_text("\n".join(rows))
    data = load_dataset(str(tmp_path / "r.csv"))
    assert data.task == "regression" and data.y_train.shape[1] == 1 and len(data.x_test) == 6


def test_a_single_x_y_npz_is_split_with_its_seed(tmp_path):
    x, y = np.random.default_rng(1).normal(size=(50, 4)), np.arange(50) % 5
    np.savez(tmp_path / "d.npz", x=x, y=y)
    one = load_dataset(DataSpec(path=str(tmp_path / "d.npz"), seed=3))
    two = load_dataset(DataSpec(path=str(tmp_path / "d.npz"), seed=3))
    assert np.array_equal(one.x_test, two.x_test) and len(one.x_test) == 10
    assert one.describe()["preprocessing"]["split"] == {"test_split": 0.2, "seed": 3, "stratified": True}


def test_a_named_loader_returns_arrays(tmp_path, monkeypatch):
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def load():\n    return {'x': np.ones((20, 3)), 'y': np.arange(20) % 2}\n"
        "def broken():\n    raise ValueError('no such table')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset(DataSpec(loader="mydata:load"))
    assert data.name == "load" and data.input_shape == (3,)
    with pytest.raises(InputError, match="data.loader mydata:broken raised ValueError: no such table"):
        load_dataset(DataSpec(loader="mydata:broken"))
    with pytest.raises(InputError, match="cannot import nosuchmodule_edgeopt"):
        load_dataset(DataSpec(loader="nosuchmodule_edgeopt:load"))
    sys.modules.pop("mydata", None)


@pytest.mark.parametrize("case, message", [
    ("empty_class", "class folder .*empty.* has no images"),
    ("unreadable", "cannot read image .*broken.png"),
    ("no_label", "no label column 'label' \\(columns: a, b\\)"),
    ("nan", "x_train holds NaN"),
    ("text_feature", "non-numeric or missing feature value"),
])
def test_bad_user_data_is_one_line_input_error(tmp_path, case, message):
    if case in ("empty_class", "unreadable"):
        folder = _images(tmp_path / "pets")
        if case == "empty_class":
            (folder / "empty").mkdir()
        else:
            (folder / "dog" / "broken.png").write_bytes(b"not a png")
        path = folder
    else:
        body = {"no_label": "a,b\n1,2\n", "nan": "a,label\n" + "nan,1\n1,0\n" * 5,
                "text_feature": "a,label\nfoo,1\n2,0\n"}[case]
        path = tmp_path / "t.csv"
        path.write_text(body)
    with pytest.raises(InputError, match=message) as error:
        load_dataset(str(path))
    assert "\n" not in str(error.value)


def test_a_data_mapping_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one of path or loader"):
        DataSpec()
    with pytest.raises(ValueError, match="exactly one of path or loader"):
        DataSpec(path="a.csv", loader="m:f")


def test_a_recipe_takes_data_as_a_path_or_a_mapping_and_names_the_bad_field():
    from edgeopt.errors import RecipeError
    from edgeopt.recipe import load_recipe

    recipe = load_recipe(None, ["model=digits_cnn", "data={path: pets/, image_size: [8, 8], scale: 0.5}"])
    assert recipe.data.image_size == (8, 8) and recipe.resolved()["data"]["path"] == "pets/"
    assert load_recipe(None, ["model=digits_cnn", "data=table.csv"]).data == "table.csv"
    with pytest.raises(RecipeError, match="data: test_split: input should be less than 1, got 2"):
        load_recipe(None, ["model=digits_cnn", "data={path: a.csv, test_split: 2}"])
    with pytest.raises(RecipeError, match="unknown key 'pth' \\(did you mean 'path'\\?\\)"):
        load_recipe(None, ["model=digits_cnn", "data={pth: a.csv}"])


def test_a_csv_with_its_own_test_file_is_the_test_split_and_names_the_classes_of_both(tmp_path):
    (tmp_path / "a.csv").write_text("\n".join(["f,kind"] + [f"{i},{'xy'[i % 2]}" for i in range(20)]) + "\n")
    (tmp_path / "b.csv").write_text("\n".join(["f,kind"] + [f"{i},y" for i in range(7)]) + "\n")
    spec = DataSpec.model_validate({"train": str(tmp_path / "a.csv"), "test": str(tmp_path / "b.csv"),
                                    "label": "kind"})
    data = load_dataset(spec)
    assert data.n_train == 20 and data.n_test == 7 and "split" not in data.preprocessing  # not re-split
    assert data.class_names == ("x", "y") and data.y_test.tolist() == [1] * 7
    assert data.preprocessing["test"] == str(tmp_path / "b.csv")


def test_an_image_folder_with_a_test_folder_of_its_own(tmp_path):
    _images(tmp_path / "train", per_class=4)
    _images(tmp_path / "held", per_class=3)
    data = load_dataset(DataSpec(path=str(tmp_path / "train"), test=str(tmp_path / "held")))
    assert data.n_train == 8 and data.n_test == 6 and data.class_names == ("cat", "dog")


def test_a_test_file_needs_the_format_of_the_training_data(tmp_path):
    _images(tmp_path / "pets")
    (tmp_path / "b.csv").write_text("f,label\n1,0\n")
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 2)), y=np.arange(10) % 2)
    with pytest.raises(InputError, match="data.test: .*b.csv must be a folder of class folders"):
        load_dataset(DataSpec(path=str(tmp_path / "pets"), test=str(tmp_path / "b.csv")))
    with pytest.raises(InputError, match="an .npz holds x_test and y_test itself"):
        load_dataset(DataSpec(path=str(tmp_path / "d.npz"), test=str(tmp_path / "b.csv")))
    with pytest.raises(ValueError, match="a loader returns its own test split"):
        DataSpec(loader="m:f", test="b.csv")
    with pytest.raises(ValueError, match="path or train"):
        DataSpec.model_validate({"path": "a.csv", "train": "a.csv"})
