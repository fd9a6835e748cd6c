"""Callers ask the type, never a kind (STYLE.md section 10): every data source declares the facts the code
using its data needs (:class:`~edgeopt.dataset.SourceFacts`), intake sets them on the dataset it returns,
and ``data.format`` takes the kinds of the registered sources that read a path.

A fake source registered with one line is accepted as a ``format`` and is answered by evaluate and the
dataset from its facts alone; no module outside intake compares a data source's name to a string.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

import edgeopt
from edgeopt import evaluate
from edgeopt.data import SOURCES, load_dataset
from edgeopt.dataset import SourceFacts
from edgeopt.errors import InputError
from edgeopt.recipe import parse_recipe
from edgeopt.sources import CSV, IMAGES, DataSpec, Source, formats, from_arrays, path_claims

PACKAGE = Path(edgeopt.__file__).parent
INTAKE = {"sources.py", "data.py"}  # where the kinds of data are named: the sources and their registry

DECLARED = {  # kind -> (whole when unsplit, folder classes, named arrays, pixels, what a sample is called)
    "builtin": (False, False, True, False, "samples"),
    "loader": (False, False, True, False, "samples"),
    "images": (True, True, False, True, "images"),
    "csv": (False, False, False, False, "samples"),
    "npz": (False, False, True, False, "samples"),
}


def facts_of(facts: SourceFacts) -> tuple:
    return (facts.whole_when_unsplit, facts.folder_classes, facts.named_arrays, facts.pixels, facts.samples)


def test_each_source_row_declares_its_facts():
    assert {kind: facts_of(source.facts) for kind, source in SOURCES.items()} == DECLARED
    assert {kind: source.reads for kind, source in SOURCES.items() if source.reads} == {
        "images": "a folder of class folders", "csv": "a .csv file", "npz": "an .npz file"}
    assert formats() == ("auto", "npz", "images", "csv")


def _image_folder(root: Path) -> Path:
    for name, value in (("cat", 40), ("dog", 200)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((4, 4), value + i, dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_intake_sets_the_facts_and_the_report_keeps_its_data_section(tmp_path):
    folder = load_dataset(str(_image_folder(tmp_path / "pets")))
    assert folder.source == IMAGES.facts and folder.preprocessing["source"] == "image folder"
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(12)))
    rows = load_dataset(str(table))
    assert rows.source == CSV.facts and load_dataset("digits").source == SourceFacts()
    for data in (folder, rows):
        described = data.describe()
        assert set(described) == {"name", "task", "n_train", "n_test", "input_shape", "output_dim",
                                  "preprocessing"}
        assert "whole_when_unsplit" not in str(described)
    assert evaluate.whole_folder(folder) and not evaluate.whole_folder(rows)


def test_a_wrong_format_is_refused_with_the_same_message():
    with pytest.raises(ValidationError, match=r"Input should be 'auto', 'npz', 'images' or 'csv'"):
        DataSpec(path="x.csv", format="parquet")
    with pytest.raises(Exception, match=r"data: format: input should be 'auto', 'npz', 'images' or 'csv', "
                                        r"got 'parquet'"):
        parse_recipe({"model": "digits_cnn", "data": {"path": "x.csv", "format": "parquet"}})
    with pytest.raises(InputError, match=r"data.format: input should be 'auto', 'npz', 'images' or 'csv', "
                                         r"got 3"):
        evaluate.load_data({"path": "x.csv", "format": 3})
    assert DataSpec(path="x", format="images").format == "images"


def _read_pixels(spec: DataSpec):
    """A fake kind of data: 60 'pixel' samples of two named classes, no split of its own."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = rng.uniform(0, 255, size=(60, 3, 3, 1))
    return from_arrays(Path(spec.path).stem, f"data {spec.path}", x, y, test_split=0.5, seed=0,
                       preprocessing={"source": "pixels"}, label_names=["dark", "light"])


PIXELS = Source("pixels", claims=path_claims("pixels", lambda path: path.suffix == ".pix"), load=_read_pixels,
                facts=SourceFacts(whole_when_unsplit=True, folder_classes=True, named_arrays=False,
                                  pixels=True, samples="frames"), reads="a .pix file", suffixes=(".pix",))


@pytest.fixture
def pix(tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES, "pixels", PIXELS)  # the one line that registers a source
    path = tmp_path / "shots.pix"
    path.write_bytes(b"")
    return path


def test_a_fake_source_registered_with_one_line_is_a_format_and_is_answered_from_its_facts(pix):
    assert formats() == ("auto", "npz", "images", "csv", "pixels")
    with pytest.raises(ValidationError, match=r"'auto', 'npz', 'images', 'csv' or 'pixels'"):
        DataSpec(path=str(pix), format="parquet")
    data = load_dataset(DataSpec(path=str(pix), format="pixels"))
    assert data.source is PIXELS.facts and load_dataset(str(pix)).source is PIXELS.facts
    assert evaluate.load_data({"path": str(pix), "format": "pixels"}).n_test == 30
    # evaluate: the unsplit data is the user's test set, scored whole, said in the source's words
    assert evaluate.whole_folder(data)
    whole = evaluate._whole(data, evaluate.with_every_sample(data), str(pix))
    assert whole.startswith(f"scored all 60 frames of {pix} (no train/ and test/ folders")
    warning = evaluate.below_chance(0.5, data)
    assert "(class folders sort alphabetically)" in warning
    assert "(pixels 0..255 times data.scale 1)" in warning
    assert "set data.scale: 0.00392156862745098" in warning
    # the dataset: a model with two inputs is told this source gives one input and one output
    with pytest.raises(InputError, match="a CSV file or an image folder gives one input and one output"):
        data.for_model(["a", "b"], ["out"], "model m")


def test_the_same_data_from_a_source_with_default_facts_is_answered_otherwise(pix, monkeypatch):
    monkeypatch.setitem(SOURCES, "pixels", Source("pixels", claims=PIXELS.claims, load=_read_pixels,
                                                  reads="a .pix file"))
    data = load_dataset(DataSpec(path=str(pix), format="pixels"))
    assert data.source == SourceFacts() and not evaluate.whole_folder(data)
    warning = evaluate.below_chance(0.5, data)
    assert "(text labels sort alphabetically)" in warning and "pixels 0..255" not in warning
    with pytest.raises(InputError, match=r"name the arrays by the model's inputs \(x_train/<name>"):
        data.for_model(["a", "b"], ["out"], "model m")


def _source_names() -> set[str]:
    """The registry's kinds and every ``"source"`` a source writes in the preprocessing it records."""
    names = set(SOURCES)
    for node in ast.walk(ast.parse((PACKAGE / "sources.py").read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "source" \
                        and isinstance(value, ast.Constant):
                    names.add(value.value)
    return names


def kind_tests(source: str, names: set[str]) -> list[str]:
    """Comparisons in ``source`` of a data source's name to a string: a name constant on either side,
    or the ``source`` a dataset's preprocessing records."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        text = ast.unparse(node)
        strings = {n.value for n in ast.walk(node)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        if strings & names or ("preprocessing" in text and "source" in text):
            found.append(f"line {node.lineno}: {text}")
    return found


def test_no_module_outside_intake_compares_a_data_source_name_to_a_string():
    names = _source_names()
    assert {"image folder", "images", "csv", "npz", "loader"} <= names
    found = {str(path.relative_to(PACKAGE)): kind_tests(path.read_text(), names)
             for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).as_posix() not in INTAKE}
    assert not {path: hits for path, hits in found.items() if hits}


def test_the_kind_test_check_can_fail():
    names = _source_names()
    assert kind_tests('ok = data.preprocessing.get("source") == "image folder"', names)
    assert kind_tests('hint = source in ("csv", "image folder")', names)
    assert kind_tests('images = data.preprocessing["source"] == kind', names)
    assert not kind_tests("images = data.source.pixels and n > 2", names)
