"""Every kind of data and their one registry: the user's own data (.npz files, image folders, CSV files,
a Python loader, an x/y split) and the built-in datasets. No TensorFlow.

A recipe's ``data:`` is a built-in name, a path (``.npz`` file, folder of class folders, ``.csv``
file: the format is picked by what the path is), or a mapping (:class:`DataSpec`) with options::

    data: {path: images/, image_size: [96, 96], color_mode: rgb, scale: 0.00392156862745098}
    data: {path: table.csv, label: species, features: [a, b, c]}
    data: {path: poses.csv, label: [yaw, pitch]}   # several targets: regression, named in the report
    data: {path: pairs.npz, task: binary}      # labels 0 and 1 (any numeric type), checked
    data: {train: a.csv, test: b.csv}          # a test file of its own: the test split, never re-split
    data: {loader: "mypkg.data:load"}          # returns (x_train, y_train, x_test, y_test) or {x, y}
    data: two_inputs.npz                       # x_train/<input name>, y_train/<output name>: named arrays

Each kind of data is a :class:`Source` (``claims``, ``load``, and the :class:`~edgeopt.dataset.SourceFacts`
callers ask of the data it reads): :data:`LOADER`, :data:`IMAGES`, :data:`CSV`, :data:`NPZ` and the
built-in datasets (:data:`BUILTIN_SOURCE`: ``digits``, ``digits32``, ``facepose``), all registered in
:data:`SOURCES`, the one registry :func:`edgeopt.data.load_dataset` picks from and ``data.format`` is
checked against. Adding a source is one module and one line there. Every source ends in :func:`from_arrays`,
which checks the arrays the same way for all of them (shapes, finite values, dense class labels), makes
the seeded split when the source has none, and records the preprocessing in the dataset (it goes into the
report), with the names of regression targets when the source has them (CSV label columns).

A model with several inputs or outputs takes named arrays: an .npz with a member per input and
output (``x_train/<input name>``, ``y_train/<output name>``, likewise ``x_test``, ``y_test``, or
``x/<name>`` and ``y/<name>`` to be split), or a loader whose x and y are dicts from name to array.
CSV files and image folders give one unnamed input and output.

Image folders follow ``keras.utils.image_dataset_from_directory``: one sub-folder per class, class
indices in sorted folder-name order, ``image_size`` (height, width) with bilinear resizing,
``color_mode`` grayscale / rgb / rgba, pixel values 0-255 unless ``scale`` says otherwise; with
``train/`` and ``test/`` sub-folders those are the split. A CSV file or an image folder may come with a
test file (folder) of its own, ``data: {train: ..., test: ...}``: that is the test split. Sizes are
bounded before any image is decoded (:data:`MAX_IMAGE_SIDE` pixels per side, the whole folder within the
memory an .npz may take), and only regular files are read: a FIFO in place of a file would block for
ever.
"""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from edgeopt import usercode
from edgeopt.dataset import (
    BINARY,
    CLASSIFICATION,
    MAX_NPZ_ARRAY_BYTES,
    NUMERIC_KINDS,
    REGRESSION,
    Dataset,
    SourceFacts,
    binary_labels,
    check_dataset_arrays,
    check_named_arrays,
    n_samples,
    take,
)
from edgeopt.errors import InputError
from edgeopt.paths import open_regular, path_problem
from edgeopt.strict import Strict

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_IMAGE_SIDE = 4096  # pixels per side of image_size (and of images read at their own size)
COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}


class DataSpec(Strict):
    """``data:`` as a mapping: where the data is and how to read it."""

    path: str | None = Field(None, description="an .npz file, a folder of class folders, or a .csv file")
    test: str | None = Field(None, description="a .csv file (a folder of class folders) of the same columns "
                             "(classes) as path: the test split, instead of one held out of path")
    loader: str | None = Field(None, description="'module:function' returning arrays (your own code)")
    format: str = Field("auto", description="how path is read: auto (by what it is), or the kind of a source "
                        "that reads a path (npz, images, csv; see formats())")
    test_split: float = Field(0.2, gt=0, lt=1, description="share held out for testing when the source "
                              "has no split of its own")
    seed: int = Field(0, ge=0, description="seed of that split")
    image_size: tuple[int, int] | None = Field(None, description="(height, width); default: the first "
                                               "image's size")
    color_mode: Literal["grayscale", "rgb", "rgba"] = "rgb"
    scale: float = Field(1.0, gt=0, description="pixel values are multiplied by this (1/255 for [0, 1])")
    label: str | list[str] = Field("label", description="the CSV column holding the label, or a list of "
                                   "columns holding regression targets (their names label the report)")
    features: list[str] | None = Field(None, description="CSV feature columns (default: every other)")
    task: Literal["classification", "regression", "binary"] | None = Field(
        None, description="default: classification for integer labels, else regression; binary: labels "
        "0 and 1 (checked), scored by one output unit when the model has one")

    @field_validator("format", mode="before")
    @classmethod
    def _registered_format(cls, value: Any) -> Any:
        allowed = formats()
        if not isinstance(value, str) or value not in allowed:
            quoted = [f"'{kind}'" for kind in allowed]
            raise PydanticCustomError("literal_error", "Input should be {expected}",
                                      {"expected": " or ".join([", ".join(quoted[:-1]), quoted[-1]])})
        return value

    @field_validator("label")
    @classmethod
    def _some_label(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one label column")
        return value

    @model_validator(mode="before")
    @classmethod
    def _train_is_path(cls, value: Any) -> Any:
        """``{train: a.csv, test: b.csv}`` reads as ``{path: a.csv, test: b.csv}``."""
        if isinstance(value, Mapping) and "train" in value:
            if "path" in value:
                raise ValueError("give path or train (the same thing), not both")
            value = {("path" if key == "train" else key): item for key, item in value.items()}
        return value

    @field_validator("path", "test")
    @classmethod
    def _usable_path(cls, value: str | None) -> str | None:
        problem = None if value is None else path_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("image_size")
    @classmethod
    def _bounded_image_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        # Checked before any image is read: [20000, 20000] would allocate gigabytes per image.
        if value is not None and not all(0 < side <= MAX_IMAGE_SIDE for side in value):
            raise ValueError(f"(height, width) must each be from 1 to {MAX_IMAGE_SIDE} pixels, got "
                             f"{list(value)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.path is None) == (self.loader is None):
            raise ValueError("give exactly one of path or loader")
        if self.test is not None and self.loader is not None:
            raise ValueError("test: a loader returns its own test split; give test with path (or train)")
        return self

    @property
    def name(self) -> str:
        return Path(self.path).stem if self.path else self.loader.rsplit(":", 1)[-1]


# -- the kinds of data: what edgeopt.data.SOURCES registers ---------------------------------------------


@dataclass(frozen=True)
class Source:
    """One kind of data, an entry of :data:`edgeopt.data.SOURCES` (the one registry of data sources).

    ``claims(given)`` says whether this source reads what a recipe's ``data:`` gives (a name, or a
    :class:`DataSpec`); ``load(given)`` reads it into one checked :class:`~edgeopt.dataset.Dataset`
    (arrays usually end in :func:`from_arrays`). A source that reads a path claims a :class:`DataSpec`
    whose path exists and is of its kind (``format: <kind>``, or ``auto`` and the path looks like one);
    ``test_file``: it reads ``data.test`` (a test split of its own). ``reads``: the path it reads, in
    words (``a .csv file``), for a source that reads a path, which ``format: <kind>`` names (empty for
    one that reads none: a loader, the built-in sets); ``suffixes``: the file suffixes that are its kind.
    ``facts``: what the code using its data asks (:class:`~edgeopt.dataset.SourceFacts`), set on every
    dataset it reads. Adding a source is one module (or one function) and one line in :data:`SOURCES`.
    """

    kind: str
    claims: Callable[[Any], bool]
    load: Callable[[Any], Dataset]
    test_file: bool = False
    facts: SourceFacts = SourceFacts()
    reads: str = ""
    suffixes: tuple[str, ...] = ()


def path_claims(kind: str, looks_like: Callable[[Path], bool]) -> Callable[[Any], bool]:
    """``claims`` for a source that reads an existing path: ``format: <kind>``, or ``auto`` and
    ``looks_like(path)``."""
    def claims(given: Any) -> bool:
        if not isinstance(given, DataSpec) or given.path is None or not Path(given.path).exists():
            return False
        return given.format == kind or (given.format == "auto" and looks_like(Path(given.path)))

    return claims


def _is_csv(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() == ".csv"


def _is_npz(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() == ".npz"


def _test_path(spec: DataSpec, source: Source) -> Path | None:
    """``data.test`` checked against the format of ``data.path`` (None when not given)."""
    if spec.test is None:
        return None
    test = Path(spec.test)
    if not test.exists():
        raise InputError(f"data.test: {test} not found")
    if not source.claims(DataSpec(path=str(test))):  # by what it is, as data.path in auto
        raise InputError(f"data.test: {test} must be {source.reads}, like data.path {spec.path}")
    return test


def _no_test(spec: DataSpec, kind: str) -> None:
    if spec.test is not None:
        raise InputError(f"data.test: a test file of its own is read for a .csv file or an image folder; "
                         f"an .npz holds x_test and y_test itself (data.path {spec.path} is {kind})")


def _read_images(spec: DataSpec) -> Dataset:
    return load_image_folder(Path(spec.path), spec, _test_path(spec, IMAGES))


def _read_csv(spec: DataSpec) -> Dataset:
    return load_csv(Path(spec.path), spec, _test_path(spec, CSV))


def _npz_source(spec: DataSpec) -> Dataset:
    _no_test(spec, "npz")
    return load_npz(Path(spec.path), test_split=spec.test_split, seed=spec.seed, task=spec.task)


LOADER = Source("loader", claims=lambda given: isinstance(given, DataSpec) and given.loader is not None,
                load=lambda spec: load_with_loader(spec), facts=SourceFacts())
# A folder of class folders: without train/ and test/ it is the user's test set; its classes are its
# sorted folder names; one unnamed input of pixels 0..255 times data.scale.
IMAGES = Source("images", claims=path_claims("images", Path.is_dir), load=_read_images, test_file=True,
                facts=SourceFacts(whole_when_unsplit=True, folder_classes=True, named_arrays=False,
                                  pixels=True, samples="images"),
                reads="a folder of class folders")
CSV = Source("csv", claims=path_claims("csv", _is_csv), load=_read_csv, test_file=True,
             facts=SourceFacts(named_arrays=False), reads="a .csv file", suffixes=(".csv",))
NPZ = Source("npz", claims=path_claims("npz", _is_npz), load=_npz_source, facts=SourceFacts(),
             reads="an .npz file", suffixes=(".npz",))


# -- arrays -> a checked, split Dataset -----------------------------------------------------------------


def split(x, y, test_split: float, seed: int, stratify: bool):
    """A seeded train/test split, stratified by class for classification (every class in both sides
    when it has at least two samples). ``x`` and ``y`` may be named arrays (dicts), split alike."""
    rng = np.random.default_rng(seed)
    n = n_samples(x)
    if not stratify:
        order = rng.permutation(n)
        n_test = max(1, int(round(n * test_split)))
        train_idx, test_idx = order[n_test:], order[:n_test]
        return take(x, train_idx), take(y, train_idx), take(x, test_idx), take(y, test_idx)
    train_idx, test_idx = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(len(members) * test_split)) if len(members) > 1 else 0
        n_test = min(max(n_test, 1 if len(members) > 1 else 0), len(members) - 1)
        test_idx += members[:n_test].tolist()
        train_idx += members[n_test:].tolist()
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    if not len(test_idx):
        raise InputError(f"data: too few samples ({n}) to hold out a test split")
    return take(x, train_idx), take(y, train_idx), take(x, test_idx), take(y, test_idx)


def _as_arrays(source: str, key: str, value: Any):
    """An array, or named arrays (a mapping from input or output name to array) as a dict of arrays,
    each of real numbers (see :func:`_as_array`)."""
    if isinstance(value, Mapping):
        return {str(name): _as_array(source, f"{key}/{name}", array) for name, array in value.items()}
    return _as_array(source, key, value)


NOT_REAL = {"c": "complex numbers", "U": "text", "S": "bytes", "O": "Python objects"}


def _as_array(source: str, key: str, value: Any) -> np.ndarray:
    """``value`` (an array, or nested lists from a loader) as a NumPy array of bool, int or float.

    Raises:
        InputError: ragged lists (samples of different lengths), or values that are not real numbers
            (complex, text, objects), naming ``key`` (``x_train``, ``y/label``) and the fix.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an older NumPy only warns about ragged lists
            array = np.asarray(value)
    except (ValueError, TypeError, OverflowError, Warning):
        raise InputError(f"{source}: {key} does not form an array: its samples differ in shape (ragged "
                         "lists); give every sample the same shape, as an array of numbers") from None
    if array.dtype.kind not in NUMERIC_KINDS:
        what = NOT_REAL.get(array.dtype.kind, f"{array.dtype} values")
        if key.startswith("x"):
            fix = "features must be real numbers (bool, int or float)"
        else:
            fix = "labels must be real numbers: class indices 0..K-1 or regression targets"
        raise InputError(f"{source}: {key} holds {what}; {fix}")
    return array


def _check_lengths(source: str, kind: str, arrays) -> None:
    if isinstance(arrays, dict):
        if not arrays:
            raise InputError(f"{source}: {kind} names no arrays")
        lengths = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name} {n}" for name, n in lengths.items())
            raise InputError(f"{source}: the arrays of {kind} hold different numbers of samples ({shown}); "
                             "they must match")


def from_arrays(name: str, source: str, x_train, y_train, x_test=None, y_test=None, *,
                task: str | None = None, test_split: float = 0.2, seed: int = 0,
                preprocessing: dict[str, Any] | None = None, label_names: list[str] | None = None,
                output_names: list[str] | None = None):
    """A :class:`~edgeopt.data.Dataset` from arrays, checked like an .npz and split when not split.

    ``source`` names where the arrays came from, for messages; ``label_names`` are class names,
    ``output_names`` the names of regression targets (both go into the report). Each of ``x_*`` and
    ``y_*`` may be named arrays, a mapping from the model's input (output) name to an array.
    """
    given_split = x_test is not None
    x_key, y_key = ("x_train", "y_train") if given_split else ("x", "y")
    arrays = {"x_train": _as_arrays(source, x_key, x_train), "y_train": _as_arrays(source, y_key, y_train)}
    if given_split:
        arrays["x_test"] = _as_arrays(source, "x_test", x_test)
        arrays["y_test"] = _as_arrays(source, "y_test", y_test)
    named = any(isinstance(a, dict) for a in arrays.values())
    if named:
        for key, value in arrays.items():
            _check_lengths(source, key, value)
    if not given_split:
        x, y = arrays["x_train"], arrays["y_train"]
        if n_samples(x) != n_samples(y):
            raise InputError(f"{source}: x has {n_samples(x)} samples but y has {n_samples(y)}; "
                             "they must match")
        # 0/1 of any type, as classes, so that the split is stratified
        if task == BINARY and not isinstance(y, dict):
            y = arrays["y_train"] = binary_labels(source, "y", y)
        classes = not isinstance(y, dict) and task != REGRESSION and (
            np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_) and y.ndim == 1
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"] = split(
            x, y, test_split, seed, stratify=bool(classes))
    tasks: dict[str, str] = {}
    if named:
        x_tr, y_tr, x_te, y_te, inferred, tasks = check_named_arrays(source, arrays, task)
    else:
        x_tr, y_tr, x_te, y_te, inferred = check_dataset_arrays(source, arrays, task)
    info = dict(preprocessing or {})
    if not given_split:
        info["split"] = {"test_split": test_split, "seed": seed,
                         "stratified": inferred == CLASSIFICATION and not isinstance(y_tr, dict)}
    if label_names:
        info["classes"] = list(label_names)
    names = tuple(output_names or ()) if inferred == REGRESSION else ()
    return Dataset(name, inferred, x_tr, y_tr, x_te, y_te, preprocessing=info, output_names=names,
                   tasks=tasks)


# -- .npz files -----------------------------------------------------------------------------------------


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NAME_SEPARATOR = "/"  # x_train/<input name>, y_train/<output name>: named arrays in an .npz
ZIP_MAGIC = b"PK\x03\x04"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an .npz, each header checked before its data is read; never unpickles."""
    try:
        # Our own handle, so that it is closed even when numpy fails half-way through opening the zip;
        # and a regular file's: a FIFO would block for ever.
        with open_regular(path, "data") as handle:
            if handle.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                raise InputError(f"{path}: not an .npz archive; save the arrays with "
                                 f"numpy.savez(path, {', '.join(f'{k}=...' for k in NPZ_KEYS)})")
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as archive:
                groups = group_named(path, archive.files)
                keys = NPZ_KEYS if not {"x", "y"} <= set(groups) else ("x", "y")
                missing = [k for k in keys if k not in groups]
                if missing:
                    raise InputError(f"{path}: missing arrays {', '.join(missing)} "
                                     f"(an .npz needs {', '.join(NPZ_KEYS)}, or x and y to be split; "
                                     f"named per input and output as {missing[0]}/<name>)")
                arrays: dict = {}
                for key in keys:
                    for member in groups[key].values():
                        _check_header(path, member, archive.zip)
                    named = {name: archive[member] for name, member in groups[key].items()}
                    arrays[key] = named.get("", named)
                return arrays
    except InputError:
        raise
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise InputError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())}); "
                         "save it again with numpy.savez") from None


def group_named(path: Path, files: list[str]) -> dict[str, dict[str, str]]:
    """The members of an .npz by array key: ``{"x_train": {"": "x_train"}}`` for one unnamed array,
    ``{"x_train": {"image": "x_train/image", "features": "x_train/features"}}`` for named ones.

    Raises:
        InputError: a key given both unnamed and named, or a member named ``key/`` with no name.
    """
    groups: dict[str, dict[str, str]] = {}
    for member in files:
        key, _, name = member.partition(NAME_SEPARATOR)
        if NAME_SEPARATOR in member and not name:
            raise InputError(f"{path}: array '{member}' has no name after '{NAME_SEPARATOR}'; name it "
                             f"{key}/<input or output name>")
        groups.setdefault(key, {})[name] = member
    for key, named in groups.items():
        if "" in named and len(named) > 1:
            shown = ", ".join(sorted(named)[1:])
            raise InputError(f"{path}: {key} is given both unnamed and named ({shown}); "
                             f"give either {key} or {key}/<name> per input or output")
    return groups


def _check_header(path: Path, key: str, archive) -> None:
    """Refuse an array by its .npy header: not numeric (objects would need unpickling), too big, truncated."""
    info = archive.getinfo(key + ".npy")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)  # 2.0 and 3.0 share a layout
        shape, _, dtype = read_header(member)
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
        what = "Python objects (pickled data, which edgeopt never loads)" if dtype.hasobject \
            else f"{dtype} values"
        raise InputError(f"{path}: {key} holds {what}; save numeric arrays (bool, int or float)")
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size > MAX_NPZ_ARRAY_BYTES:
        limit_gb = MAX_NPZ_ARRAY_BYTES // 1024**3
        raise InputError(f"{path}: {key} of shape {shape} is {size / 1024**3:,.1f} GB; edgeopt loads "
                         f"datasets into memory and takes at most {limit_gb} GB per array")
    if size > info.file_size:
        raise InputError(f"{path}: {key} is truncated (its header declares shape {shape}); "
                         "save the dataset again")


def load_npz(path: Path, test_split: float = 0.2, seed: int = 0, task: str | None = None) -> Dataset:
    """A user dataset: an .npz holding x_train, y_train, x_test, y_test, or x and y to split (seeded,
    stratified for classes). Numeric arrays only: never unpickles. ``task`` (classification,
    regression or binary) overrides what the labels' type says.

    Raises:
        InputError: naming the array and what is wrong with it.
    """
    arrays = _read_npz(path)
    if any(isinstance(a, dict) for a in arrays.values()):  # named per input and output
        keys = ("x", "y") if "x" in arrays else NPZ_KEYS
        return from_arrays(path.stem, str(path), *(arrays[k] for k in keys), task=task,
                           test_split=test_split, seed=seed, preprocessing={"source": "npz"})
    if "x" in arrays:
        return from_arrays(path.stem, str(path), arrays["x"], arrays["y"], task=task, test_split=test_split,
                           seed=seed, preprocessing={"source": "npz"})
    x_train, y_train, x_test, y_test, task = check_dataset_arrays(str(path), arrays, task)
    return Dataset(path.stem, task, x_train, y_train, x_test, y_test)



# -- image folders ----------------------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    """The image files of a class folder, by name (what is not a regular file is refused when read)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(folder: Path) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"data: {folder} holds no class folders; put each class's images in a folder "
                         "named after the class (images/cat/1.png, images/dog/2.png)")
    for cls in classes:
        if not _images_in(cls):
            raise InputError(f"data: class folder {cls} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                             "add images or remove the folder")
    return classes


def _read_image(path: Path, size: tuple[int, int] | None, mode: str) -> np.ndarray:
    """One image as float32 (height, width, channels), resized to ``size``; at its own size (``size``
    None) only up to :data:`MAX_IMAGE_SIDE` pixels per side, checked before its pixels are decoded."""
    try:
        with open_regular(path, "data") as handle:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's own size limit
                image = Image.open(handle)
            with image:
                width, height = image.size
                if size is None and max(width, height) > MAX_IMAGE_SIDE:
                    raise InputError(f"data: image {path} is {height}x{width} pixels, more than "
                                     f"{MAX_IMAGE_SIDE} per side; set data.image_size to resize the images, "
                                     "e.g. [224, 224]")
                converted = image.convert(mode)
                if size is not None and converted.size != (size[1], size[0]):
                    converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise InputError(f"data: cannot read image {path} ({' '.join(str(exc).split())}); "
                         "remove it or save it again as PNG or JPEG") from None
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def _read_class_folders(folder: Path, names: list[str], size, mode: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for index, name in enumerate(names):
        cls = folder / name
        if not cls.is_dir():
            raise InputError(f"data: {folder} has no folder for class '{name}'; train/ and test/ need "
                             "the same class folders")
        for path in _images_in(cls):
            images.append(_read_image(path, size, mode))
            labels.append(index)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _check_memory(folder: Path, class_folders: list[Path], size: tuple[int, int], channels: int) -> None:
    """Refuse, before reading them, images that would not fit in memory as float32 at ``size``."""
    count = sum(len(_images_in(cls)) for cls in class_folders if cls.is_dir())
    needed = count * size[0] * size[1] * channels * np.dtype(np.float32).itemsize
    if needed > MAX_NPZ_ARRAY_BYTES:
        raise InputError(f"data: {count:,} images of {size[0]}x{size[1]}x{channels} in {folder} make "
                         f"{needed / 1024**3:,.1f} GB as float32; edgeopt loads datasets into memory and "
                         f"takes at most {MAX_NPZ_ARRAY_BYTES // 1024**3} GB; set a smaller data.image_size")


def load_image_folder(folder: Path, spec: DataSpec, test: Path | None = None):
    """One sub-folder per class (or ``train/`` and ``test/``, each with the same class folders; or a
    ``test`` folder of its own, with the same class folders as ``folder``)."""
    mode = COLOR_MODES[spec.color_mode]
    splits = [folder, test] if test is not None else [folder / "train", folder / "test"]
    has_split = all(p.is_dir() for p in splits)
    classes = _class_folders(splits[0] if has_split else folder)
    names = [c.name for c in classes]
    size = spec.image_size
    if size is None:  # the first image's size, so that every other is resized to it
        height, width = _read_image(_images_in(classes[0])[0], None, mode).shape[:2]
        size = (height, width)
    roots = splits if has_split else [folder]
    _check_memory(folder, [root / name for root in roots for name in names], size, len(mode))
    preprocessing = {"source": "image folder", "image_size": list(size), "color_mode": spec.color_mode,
                     "scale": spec.scale, "interpolation": "bilinear"}
    if test is not None:
        preprocessing["test"] = str(test)
    task = "binary" if spec.task == "binary" else "classification"  # class folders are classes
    if has_split:
        _class_folders(splits[1])
        x_train, y_train = _read_class_folders(splits[0], names, size, mode)
        x_test, y_test = _read_class_folders(splits[1], names, size, mode)
        return from_arrays(folder.name, f"data {folder}", x_train * spec.scale, y_train,
                           x_test * spec.scale, y_test, task=task,
                           preprocessing=preprocessing, label_names=names)
    x, y = _read_class_folders(folder, names, size, mode)
    return from_arrays(folder.name, f"data {folder}", x * spec.scale, y, task=task,
                       test_split=spec.test_split, seed=spec.seed, preprocessing=preprocessing,
                       label_names=names)


# -- CSV ----------------------------------------------------------------------------------------------------


def _csv_rows(path: Path, spec: DataSpec, features: list[str] | None = None):
    """The header's feature columns, the features (float64) and the non-empty rows of a CSV file;
    ``features`` given: those columns (a test file must have the training file's)."""
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
        with io.TextIOWrapper(open_regular(path, "data"), encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"data: cannot read {path} ({exc}); save it as UTF-8 CSV") from None
    if len(rows) < 2:
        raise InputError(f"data: {path} needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    labels = [spec.label] if isinstance(spec.label, str) else list(spec.label)
    missing = [label for label in labels if label not in header]
    if missing:
        raise InputError(f"data: {path} has no label column {', '.join(repr(m) for m in missing)} (columns: "
                         f"{', '.join(header)}); name the label column with data.label")
    if len(labels) > 1 and spec.task not in (None, "regression"):
        raise InputError(f"data.label: {len(labels)} label columns are regression targets, but task is "
                         f"{spec.task}; give one label column for classes")
    features = features or spec.features or [h for h in header if h not in labels]
    unknown = [f for f in features if f not in header]
    if unknown:
        raise InputError(f"data.features: {path} has no column {', '.join(unknown)}")
    columns = [header.index(f) for f in features]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    try:
        x = np.asarray([[float(r[i]) for i in columns] for r in body], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise InputError(f"data: {path} has a non-numeric or missing feature value ({exc}); "
                         "features must be numbers") from None
    return features, x, body, [header.index(label) for label in labels]


def load_csv(path: Path, spec: DataSpec, test: Path | None = None):
    """Feature columns plus a label column; numeric features, integer or text labels (classes) or
    numbers (regression). Several label columns (``label: [yaw, pitch]``) are regression targets.
    A ``test`` file with the same columns is the test split (text labels: classes of both, sorted)."""
    features, x, body, label_columns = _csv_rows(path, spec)
    n_train = len(body)
    if test is not None:  # read as one table, so that text labels name the same classes in both
        _, x_test, test_body, test_labels = _csv_rows(test, spec, features)
        x, body = np.concatenate([x, x_test]), body + [
            [r[i] if i < len(r) else "" for i in test_labels] for r in test_body]
        body[:n_train] = [[r[i] if i < len(r) else "" for i in label_columns] for r in body[:n_train]]
        label_columns = list(range(len(label_columns)))
    labels = [spec.label] if isinstance(spec.label, str) else list(spec.label)
    preprocessing = {"source": "csv", "features": features, "label": spec.label}
    if test is not None:
        preprocessing["test"] = str(test)

    def made(y, task, **names):
        if test is None:
            return from_arrays(path.stem, f"data {path}", x, y, task=task, test_split=spec.test_split,
                               seed=spec.seed, preprocessing=preprocessing, **names)
        return from_arrays(path.stem, f"data {path} and {test}", x[:n_train], y[:n_train], x[n_train:],
                           y[n_train:], task=task, preprocessing=preprocessing, **names)

    if len(labels) > 1:
        return made(_csv_targets(path, body, label_columns), "regression", output_names=labels)
    label_at = label_columns[0]
    raw = [r[label_at].strip() if label_at < len(r) else "" for r in body]
    label_names = None
    task = spec.task
    try:
        numbers = np.asarray([float(v) for v in raw])
        integral = bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
        if task == "classification" or (task is None and integral):
            y = numbers.astype(np.int64)
        else:  # regression, or binary: 0.0 / 1.0 are checked as labels there
            y = numbers.astype(np.float32)
    except ValueError:  # text labels: classes in sorted order
        if task == "regression":
            raise InputError(f"data: {path} column '{labels[0]}' holds text; regression needs numbers") \
                from None
        label_names = sorted(set(raw))
        y = np.asarray([label_names.index(v) for v in raw], dtype=np.int64)
    return made(y, task, label_names=label_names, output_names=labels)


def _csv_targets(path: Path, body: list[list[str]], columns: list[int]) -> np.ndarray:
    try:
        return np.asarray([[float(r[i]) for i in columns] for r in body], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise InputError(f"data: {path} has a non-numeric or missing target value ({exc}); regression "
                         "targets must be numbers") from None


# -- a loader the user names ---------------------------------------------------------------------------------


def load_with_loader(spec: DataSpec):
    """Call the user's ``module:function``; it returns ``(x_train, y_train, x_test, y_test)``, ``(x, y)``,
    each an array or a dict from input (output) name to array (named arrays, for several inputs or outputs),
    or a dict with those keys."""
    module_name, _, function_name = spec.loader.partition(":")
    if not module_name or not function_name:
        raise InputError(f"data.loader must be 'module:function', got {spec.loader!r}")
    where = f"data.loader {spec.loader}"
    function = getattr(usercode.import_module(module_name, where), function_name, None)
    if not callable(function):
        raise InputError(f"{where}: {module_name} has no function {function_name}; check the name")
    result = usercode.call(where, function)
    if isinstance(result, dict):
        keys = ("x_train", "y_train", "x_test", "y_test") if "x_train" in result else ("x", "y")
        missing = [k for k in keys if k not in result]
        if missing:
            raise InputError(f"{where} returned a dict without {', '.join(missing)}")
        result = tuple(result[k] for k in keys)
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 4):
        raise InputError(f"{where} must return (x_train, y_train, x_test, y_test) or (x, y), "
                         f"got {type(result).__name__}")
    preprocessing = {"source": "loader", "loader": spec.loader}
    if len(result) == 4:
        return from_arrays(spec.name, where, *result, task=spec.task, preprocessing=preprocessing)
    return from_arrays(spec.name, where, *result, task=spec.task, test_split=spec.test_split, seed=spec.seed,
                       preprocessing=preprocessing)


# -- the built-in datasets ---------------------------------------------------------------------------------
# Every built-in dataset has float32 inputs and a fixed split, and never touches the network:
# - digits: scikit-learn's bundled 8x8 handwritten digits (1,797 real samples), pixels scaled to [0, 1],
#   shape (8, 8, 1); a stratified 80/20 split with seed 0 (1,437 train / 360 test).
# - digits32: the same digits and split, upsampled to 32x32x1 by bilinear interpolation.
# - facepose: a deterministic generator of 32x32 grayscale synthetic faces labelled with (yaw, pitch) in
#   degrees, yaw uniform in [-75, 75] and pitch uniform in [-45, 45]. Train and test are drawn from
#   independent seeded streams (8,000 / 2,000 samples). See make_facepose.

FACEPOSE_YAW_RANGE = (-75.0, 75.0)
FACEPOSE_PITCH_RANGE = (-45.0, 45.0)
FACEPOSE_SIZE = 32
FACEPOSE_N_TRAIN = 8000
FACEPOSE_N_TEST = 2000
FACEPOSE_NOISE_STD = 0.08


def load_digits() -> Dataset:
    """scikit-learn's bundled digits, stratified 80/20 split with seed 0."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return Dataset("digits", CLASSIFICATION, x_train, y_train, x_test, y_test, classes=DIGIT_CLASSES)


DIGIT_CLASSES = tuple(str(digit) for digit in range(10))


DIGITS32_SIZE = 32


def upsample_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, h, w, 1) images to (n, size, size, 1) by bilinear interpolation (pixel centres aligned)."""
    n, h, w = images.shape[:3]
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def load_digits32() -> Dataset:
    """The same digits and split, upsampled to 32x32x1 (bilinear): input for mobilenet_v2-style models."""
    small = load_digits()
    return Dataset("digits32", CLASSIFICATION, upsample_bilinear(small.x_train, DIGITS32_SIZE), small.y_train,
                   upsample_bilinear(small.x_test, DIGITS32_SIZE), small.y_test, classes=DIGIT_CLASSES)


def _rotate(points: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> np.ndarray:
    """Rotate head-frame points (x right, y down, z towards the camera) by yaw then pitch.

    points: (F, 3); angles: (N,). Returns (N, F, 3). Positive yaw turns the face to the image
    right; positive pitch tilts it up.
    """
    yaw = np.deg2rad(yaw_deg)[:, None]
    pitch = np.deg2rad(pitch_deg)[:, None]
    x, y, z = points[:, 0][None], points[:, 1][None], points[:, 2][None]
    x1 = x * np.cos(yaw) + z * np.sin(yaw)
    z1 = -x * np.sin(yaw) + z * np.cos(yaw)
    y2 = y * np.cos(pitch) - z1 * np.sin(pitch)
    z2 = y * np.sin(pitch) + z1 * np.cos(pitch)
    return np.stack([x1, y2, z2], axis=-1)


# Facial features on the head sphere (unit radius): position, darkness, blob size (x, y) in radii.
_FEATURES = np.array(
    [
        # x, y, z, intensity, sigma_x, sigma_y
        [-0.36, -0.22, 0.0, -0.60, 0.13, 0.10],  # left eye
        [0.36, -0.22, 0.0, -0.60, 0.13, 0.10],  # right eye
        [0.00, 0.12, 0.0, -0.35, 0.08, 0.13],  # nose (shadow)
        [0.00, 0.45, 0.0, -0.50, 0.25, 0.08],  # mouth
        [0.00, -0.80, 0.0, -0.40, 0.50, 0.15],  # hairline
    ],
    dtype=np.float64,
)
_NOSE_TIP_PROTRUSION = 1.18  # the nose sits in front of the sphere, so it moves more with the pose


def make_facepose(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` synthetic 32x32 faces and their (yaw, pitch) labels in degrees.

    A head is a soft-edged ellipse of random size (radius 10-12 px) and position (centre jitter
    sigma 1 px) on a random background; eyes, nose, mouth and hairline are Gaussian blobs placed by
    rotating points on the head sphere by yaw and pitch and projecting them orthographically;
    features turned away from the camera fade out. Brightness and contrast vary per image and
    Gaussian pixel noise (sigma 0.08) is added; pixels are clipped to [0, 1]. Deterministic for a
    given (n, seed).

    Returns:
        x: float32 (n, 32, 32, 1); y: float32 (n, 2) holding (yaw, pitch) in degrees.
    """
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(*FACEPOSE_YAW_RANGE, size=n)
    pitch = rng.uniform(*FACEPOSE_PITCH_RANGE, size=n)
    radius = rng.uniform(10.0, 12.0, size=n)[:, None, None]
    cx = (FACEPOSE_SIZE / 2 + rng.normal(0, 1.0, size=n))[:, None, None]
    cy = (FACEPOSE_SIZE / 2 + rng.normal(0, 1.0, size=n))[:, None, None]
    background = rng.uniform(0.05, 0.35, size=n)[:, None, None]
    skin = rng.uniform(0.6, 0.85, size=n)[:, None, None]

    grid = np.arange(FACEPOSE_SIZE, dtype=np.float64) + 0.5
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    gx, gy = gx[None], gy[None]

    # Head outline: an ellipse a little narrower than tall, with a soft edge.
    ellipse = ((gx - cx) / (0.85 * radius)) ** 2 + ((gy - cy) / radius) ** 2
    head = 1.0 / (1.0 + np.exp((ellipse - 1.0) * 12.0))
    image = background + (skin - background) * head

    points = _FEATURES[:, :3].copy()
    points[:, 2] = np.sqrt(np.clip(1.0 - points[:, 0] ** 2 - points[:, 1] ** 2, 0.0, None))
    points[2, 2] *= _NOSE_TIP_PROTRUSION
    rotated = _rotate(points, yaw, pitch)  # (n, F, 3)
    for f in range(len(_FEATURES)):
        px = cx[:, 0, 0] + radius[:, 0, 0] * rotated[:, f, 0]
        py = cy[:, 0, 0] + radius[:, 0, 0] * rotated[:, f, 1]
        facing = np.clip(rotated[:, f, 2] * 3.0, 0.0, 1.0)  # fade as the feature turns away
        sx = radius[:, 0, 0] * _FEATURES[f, 4] * (0.35 + 0.65 * np.clip(rotated[:, f, 2], 0.0, 1.0))
        sy = radius[:, 0, 0] * _FEATURES[f, 5]
        blob = np.exp(
            -0.5
            * (
                ((gx - px[:, None, None]) / sx[:, None, None]) ** 2
                + ((gy - py[:, None, None]) / sy[:, None, None]) ** 2
            )
        )
        image = image + _FEATURES[f, 3] * facing[:, None, None] * blob * head

    contrast = rng.uniform(0.8, 1.2, size=n)[:, None, None]
    brightness = rng.uniform(-0.1, 0.1, size=n)[:, None, None]
    image = (image - 0.5) * contrast + 0.5 + brightness
    image = image + rng.normal(0.0, FACEPOSE_NOISE_STD, size=image.shape)
    x = np.clip(image, 0.0, 1.0).astype(np.float32)[..., np.newaxis]
    y = np.stack([yaw, pitch], axis=1).astype(np.float32)
    return x, y


def load_facepose() -> Dataset:
    """The facepose regression data: 8,000 train (seed 1) and 2,000 test (seed 2) faces."""
    x_train, y_train = make_facepose(FACEPOSE_N_TRAIN, seed=1)
    x_test, y_test = make_facepose(FACEPOSE_N_TEST, seed=2)
    return Dataset("facepose", REGRESSION, x_train, y_train, x_test, y_test, unit="degrees",
                   output_names=("yaw", "pitch"))


BUILTIN = {"digits": load_digits, "digits32": load_digits32, "facepose": load_facepose}
# A recipe's data: by name (a str, not a DataSpec: a path named like a built-in set is read as the set).
BUILTIN_SOURCE = Source("builtin", claims=lambda given: isinstance(given, str) and given in BUILTIN,
                        load=lambda name: BUILTIN[name](), facts=SourceFacts())


# -- the registry -------------------------------------------------------------------------------------------

# The one registry of data sources: kind -> Source (see Source for the contract). The first that claims
# what ``data:`` gives reads it (edgeopt.data.load_dataset); an existing path none claims is read as an
# .npz (FALLBACK), whose own checks then say what is wrong with it. A source that reads a path is a value
# of data.format under its kind (formats()). A new source is one module and one line here.
SOURCES: dict[str, Source] = {
    "builtin": BUILTIN_SOURCE,
    "loader": LOADER,
    "images": IMAGES,
    "csv": CSV,
    "npz": NPZ,
}
FALLBACK = "npz"


def formats() -> tuple[str, ...]:
    """The values ``data.format`` takes: ``auto``, then the kind of every registered source that reads a
    path, the fallback's first (the order the message has always listed them in)."""
    kinds = [kind for kind, source in SOURCES.items() if source.reads]
    return ("auto", *sorted(kinds, key=lambda kind: kind != FALLBACK))
