"""Datasets: the built-in ones (``digits``, ``facepose``) and user ``.npz`` files, as fixed splits.

Every dataset is a :class:`Dataset` with float32 inputs and a fixed train/test split, so figures are
comparable across runs and releases. Built-in data never touches the network:

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real samples), pixels scaled to
  [0, 1], shape (8, 8, 1); a stratified 80/20 split with seed 0 (1,437 train / 360 test).
- ``digits32``: the same digits and split, upsampled to 32x32x1 by bilinear interpolation.
- ``facepose``: a deterministic generator of 32x32 grayscale synthetic faces labelled with
  (yaw, pitch) in degrees, yaw uniform in [-75, 75] and pitch uniform in [-45, 45]. Train and test
  are drawn from independent seeded streams (8,000 / 2,000 samples). See :func:`make_facepose`.

A model with several inputs or outputs takes named arrays: ``x_train`` (and the others) may be a
dict from input (output) name to array, in an .npz as ``x_train/<input name>`` and
``y_train/<output name>`` members (see :func:`group_named`). :meth:`Dataset.for_model` matches the names
with the model's and puts them in its order; each output keeps its own task (:attr:`Dataset.tasks`), and
:meth:`Dataset.output` views one output as a single-output dataset, which every single-output rule
(labels, heads, scoring) then applies to unchanged.

This module imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.errors import InputError
from edgeopt.paths import check_path, open_regular
from edgeopt.types import OUTPUT_SEPARATOR, TASK_METRIC, Task

if TYPE_CHECKING:
    from edgeopt.recipe import TrainSpec

CLASSIFICATION = "classification"
REGRESSION = "regression"
# Binary is classification with labels 0 and 1, scored by one output unit when the model has one (a
# sigmoid probability or a logit); as a dataset's task it is stored as classification. A ``data:``
# mapping may state it to have 0/1 labels checked (and float or bool 0/1 labels read as classes).
BINARY = "binary"
# The task of a dataset (and a report) with several named outputs, each with its own task; a metric
# of one of them is keyed ``<metric>/<output name>`` (``accuracy/label``).
MULTI_OUTPUT = Task.MULTI_OUTPUT.value

FACEPOSE_YAW_RANGE = (-75.0, 75.0)
FACEPOSE_PITCH_RANGE = (-45.0, 45.0)
FACEPOSE_SIZE = 32
FACEPOSE_N_TRAIN = 8000
FACEPOSE_N_TEST = 2000
FACEPOSE_NOISE_STD = 0.08


Arrays = np.ndarray | dict[str, np.ndarray]  # one unnamed array, or named ones (one per input or output)


def n_samples(arrays: Arrays) -> int:
    """Samples in an array, or in named arrays (which all hold the same number)."""
    return len(next(iter(arrays.values()))) if isinstance(arrays, dict) else len(arrays)


def take(arrays: Arrays, index) -> Arrays:
    """The samples at ``index`` of an array, or of every named array alike."""
    if isinstance(arrays, dict):
        return {name: array[index] for name, array in arrays.items()}
    return arrays[index]


def shape_fits(wanted: tuple, given: tuple) -> bool:
    """Whether samples of shape ``given`` fit a model input of shape ``wanted`` (None: any size)."""
    return len(wanted) == len(given) and all(w in (None, g) for w, g in zip(wanted, given, strict=True))


def names_of(arrays: Arrays) -> tuple[str, ...]:
    """The names of named arrays; empty for one unnamed array."""
    return tuple(arrays) if isinstance(arrays, dict) else ()


@dataclass(frozen=True)
class Dataset:
    """A fixed split. ``y`` holds class indices (int64) or regression targets (float32, 2-D).

    For a model with several inputs, ``x_*`` map input names to arrays; for several outputs, ``y_*``
    map output names to arrays, ``tasks`` gives each output's task and ``task`` is
    :data:`MULTI_OUTPUT` (with one named output, ``task`` is that output's).
    """

    name: str
    task: str
    x_train: Arrays
    y_train: Arrays
    x_test: Arrays
    y_test: Arrays
    unit: str = ""  # of regression targets, for reports ("degrees")
    preprocessing: dict = field(default_factory=dict)  # how user data was read: recorded in the report
    output_names: tuple[str, ...] = ()  # of regression targets, when the data names them (CSV columns)
    tasks: dict[str, str] = field(default_factory=dict)  # per named output: its task
    classes: tuple[str, ...] = ()  # a built-in dataset's class names, in label order

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes' names in label order (the order of a classifier's outputs) when the data names
        them: class folders and text labels (sorted), a built-in dataset's; else empty."""
        if self.task != CLASSIFICATION or self.named_outputs:
            return ()
        return tuple(str(name) for name in self.preprocessing.get("classes") or self.classes)

    @property
    def named_inputs(self) -> bool:
        return isinstance(self.x_train, dict)

    @property
    def named_outputs(self) -> bool:
        return isinstance(self.y_train, dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        return names_of(self.x_train)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the outputs, when the labels are named."""
        return names_of(self.y_train)

    @property
    def n_train(self) -> int:
        return n_samples(self.x_train)

    @property
    def n_test(self) -> int:
        return n_samples(self.x_test)

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.named_inputs:
            raise InputError(f"data '{self.name}' has named inputs ({', '.join(self.input_names)}), "
                             "which only a model with inputs of those names takes")
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per input name, its sample shape (one unnamed input: under the name ``""``)."""
        named = self.x_train if self.named_inputs else {"": self.x_train}
        return {name: tuple(int(d) for d in array.shape[1:]) for name, array in named.items()}

    @property
    def output_dim(self) -> int:
        if self.named_outputs:
            if len(self.outputs) != 1:
                raise InputError(f"data '{self.name}' has several outputs ({', '.join(self.outputs)}); "
                                 "each has its own dimension")
            return self.output(self.outputs[0]).output_dim
        if self.task == CLASSIFICATION:
            return int(max(self.y_train.max(), self.y_test.max())) + 1
        return int(self.y_train.shape[1])

    def output(self, name: str) -> Dataset:
        """One named output as a single-output dataset (the inputs stay as they are)."""
        return replace(self, name=f"{self.name}{OUTPUT_SEPARATOR}{name}", task=self.tasks[name],
                       y_train=self.y_train[name], y_test=self.y_test[name], output_names=(), tasks={},
                       classes=())

    def mean_predictor_mae(self) -> float | None:
        """MAE on the test split of always predicting the training-label mean (regression only)."""
        if self.task != REGRESSION:
            return None
        return float(np.mean(np.abs(self.y_test - self.y_train.mean(axis=0))))

    def representative(self, count: int = 200, seed: int = 0) -> Arrays:
        """Samples from the training split, for int8 calibration (named inputs: the same samples of each)."""
        rng = np.random.default_rng(seed)
        n = self.n_train
        idx = rng.choice(n, size=min(count, n), replace=False)
        return take(self.x_train, np.sort(idx))

    def primary_output(self) -> str | None:
        """The output whose task metric a multi-output report is judged by: the first one."""
        return self.outputs[0] if self.task == MULTI_OUTPUT else None

    def primary_metric(self) -> str | None:
        """``<metric>/<output>`` of :meth:`primary_output` (accuracy or MAE by its task), or None."""
        first = self.primary_output()
        if first is None:
            return None
        return f"{TASK_METRIC[Task(self.tasks[first])]}{OUTPUT_SEPARATOR}{first}"

    def describe(self) -> dict:
        if self.named_inputs or self.named_outputs:
            return self._describe_named()
        info = {
            "name": self.name,
            "task": self.task,
            "n_train": int(len(self.x_train)),
            "n_test": int(len(self.x_test)),
            "input_shape": list(self.input_shape),
            "output_dim": self.output_dim,
        }
        if self.task == REGRESSION:
            info["unit"] = self.unit
            info["mean_predictor_mae"] = self.mean_predictor_mae()
        if self.output_names:
            info["output_names"] = list(self.output_names)
        if self.preprocessing:
            info["preprocessing"] = self.preprocessing
        return info

    def _describe_named(self) -> dict:
        info: dict = {"name": self.name, "task": self.task, "n_train": self.n_train, "n_test": self.n_test}
        if self.named_inputs:
            info["inputs"] = {name: list(shape) for name, shape in self.input_shapes.items()}
        else:
            info["input_shape"] = list(self.input_shapes[""])
        if self.named_outputs:
            outputs = {}
            for name in self.outputs:
                view = self.output(name)
                entry: dict = {"task": view.task, "output_dim": view.output_dim}
                if view.task == REGRESSION:
                    entry["mean_predictor_mae"] = view.mean_predictor_mae()
                outputs[name] = entry
            info["outputs"] = outputs
            if self.primary_metric():
                info["primary_metric"] = self.primary_metric()
        else:
            info["output_dim"] = self.output_dim
            if self.task == REGRESSION:
                info["mean_predictor_mae"] = self.mean_predictor_mae()
        if self.preprocessing:
            info["preprocessing"] = self.preprocessing
        return info

    def for_model(self, inputs: list[str], outputs: list[str], where: str) -> Dataset:
        """This data matched with a model's input and output names and put in the model's order.

        A model with one input (output) takes an unnamed array, or one named array of any name when the
        model's names are unknown (empty, a zoo model) or of its name; a model with several takes named
        arrays whose names are exactly the model's. One named array for a model of one is unwrapped,
        so that a single-input single-output model sees exactly what unnamed data gives it.

        Raises:
            InputError: in one line, what the model expects and what the data has.
        """
        x_train, x_test = self._match("inputs", self.x_train, self.x_test, inputs, where)
        y_train, y_test = self._match("outputs", self.y_train, self.y_test, outputs, where)
        tasks = {name: self.tasks[name] for name in names_of(y_train)}
        task = self.task
        if not isinstance(y_train, dict) and self.named_outputs:
            task = self.tasks[self.outputs[0]]
        return replace(self, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test, tasks=tasks,
                       task=task)

    def _match(self, kind: str, train: Arrays, test: Arrays, wanted: list[str], where: str):
        given = names_of(train)
        if len(wanted) <= 1:
            if not given:
                return train, test
            if len(given) == 1 and (not wanted or given[0] == wanted[0]):
                return train[given[0]], test[given[0]]
        elif set(given) == set(wanted):
            return {n: train[n] for n in wanted}, {n: test[n] for n in wanted}
        expects = (f"{kind if len(wanted) > 1 else kind[:-1]} {', '.join(wanted)}" if wanted
                   else f"one {kind[:-1]}")
        has = f"{kind if len(given) > 1 else kind[:-1]} {', '.join(given)}" if given else \
            f"one unnamed {kind[:-1]} array"
        hint = ""
        if not given:
            source, prefix = self.preprocessing.get("source"), "x" if kind == "inputs" else "y"
            hint = ("; a CSV file or an image folder gives one input and one output: give named arrays in "
                    "an .npz (x_train/<input name>, y_train/<output name>) or from a loader"
                    if source in ("csv", "image folder") else
                    f"; name the arrays by the model's {kind} ({prefix}_train/<name> and "
                    f"{prefix}_test/<name> in an .npz, or dicts from a loader)")
        raise InputError(f"{where} has {expects} but data '{self.name}' has {has}{hint}")


def check_outputs(data: Dataset, units: int, where: str) -> None:
    """Refuse a model whose ``units`` outputs cannot score ``data``'s labels, before anything runs.

    One output unit on classification data is a binary head (a sigmoid probability or a logit) that
    scores labels 0 and 1; otherwise every class needs an output of its own, and every regression
    target a unit. ``where`` names the model in the message.

    Raises:
        InputError: in one line, naming both sides and what to change.
    """
    if data.task == CLASSIFICATION:
        classes = data.output_dim
        if units == 1 and classes > 2:
            raise InputError(f"{where} has one output unit, a binary head that scores labels 0 and 1, but "
                             f"data '{data.name}' has class labels 0..{classes - 1}; give 0/1 labels, or "
                             f"use a model with {classes} outputs")
        if units > 1 and classes > units:
            raise InputError(f"data '{data.name}' has class labels 0..{classes - 1} but {where} has {units} "
                             f"outputs, so labels from {units} on cannot be scored; is this the model for "
                             "this data?")
    elif units != data.output_dim:
        raise InputError(f"data '{data.name}' has {data.output_dim} regression target(s) per sample but "
                         f"{where} has {units} output(s); they must match")


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

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NAME_SEPARATOR = "/"  # x_train/<input name>, y_train/<output name>: named arrays in an .npz
MAX_CLASSES = 10_000
MAX_NPZ_ARRAY_BYTES = 4 * 1024**3  # datasets are loaded into memory whole
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
ZIP_MAGIC = b"PK\x03\x04"
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an .npz, each header checked before its data is read; never unpickles."""
    import zipfile
    import zlib

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


def _check_shapes(path: Path, arrays: dict[str, np.ndarray]) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2:
            raise InputError(f"{path}: x_{split} has shape {x.shape}; it needs a sample axis and at least "
                             "one feature axis, e.g. (n, features) or (n, height, width, channels)")
        if 0 in x.shape[1:]:
            raise InputError(f"{path}: x_{split} has shape {x.shape}: its samples hold no values")
        if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
            raise InputError(f"{path}: y_{split} has shape {y.shape}; it must be class labels of shape (n,) "
                             "or regression targets of shape (n, outputs)")
        nx, ny = len(x), len(y)
        if nx != ny:
            raise InputError(f"{path}: x_{split} has {nx} samples but y_{split} has {ny}; they must match")
        if nx == 0:
            raise InputError(f"{path}: x_{split} is empty")
    for kind in ("x", "y"):
        train, test = arrays[f"{kind}_train"], arrays[f"{kind}_test"]
        if train.shape[1:] != test.shape[1:]:
            raise InputError(
                f"{path}: {kind}_train samples have shape {train.shape[1:]} but {kind}_test "
                f"{test.shape[1:]}; they must match"
            )


def _check_labels(path: Path, y_train: np.ndarray, y_test: np.ndarray) -> None:
    """Class labels must be 0..K-1, every class present in y_train, K at most MAX_CLASSES."""
    if not np.issubdtype(y_test.dtype, np.integer):
        raise InputError(f"{path}: y_train holds integer class labels but y_test holds {y_test.dtype} "
                         "values; save both as integers (classification) or both as floats (regression)")
    low = min(int(y_train.min()), int(y_test.min()))
    high = max(int(y_train.max()), int(y_test.max()))
    if low < 0:
        raise InputError(f"{path}: class labels must be 0..K-1, found the negative label {low}")
    if high >= MAX_CLASSES:
        raise InputError(f"{path}: class label {high:,} is too large: labels must be 0..K-1 with at most "
                         f"{MAX_CLASSES:,} classes; renumber the classes (or save float targets for "
                         "regression)")
    absent = np.setdiff1d(np.arange(high + 1), y_train)
    if absent.size:
        shown = ", ".join(str(int(c)) for c in absent[:5]) + (", ..." if absent.size > 5 else "")
        raise InputError(f"{path}: class labels must be dense 0..{high}, but y_train has no sample of "
                         f"class {shown}; renumber the classes 0..K-1")


def _as_float32(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        values = array.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: {name} holds NaN, infinite or out-of-float32-range values")
    return values


def binary_labels(source: str, name: str, y: np.ndarray) -> np.ndarray:
    """``y`` as int64 labels 0 and 1, one per sample, for a dataset whose task is stated binary.

    Raises:
        InputError: a label other than 0 and 1 (or NaN), or more than one label per sample.
    """
    values = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if values.ndim != 1:
        raise InputError(f"{source}: task is binary but {name} has shape {y.shape}; give one label, "
                         "0 or 1, per sample")
    valid = np.isin(values, (0, 1))
    if not np.all(valid):
        raise InputError(f"{source}: task is binary but {name} holds the label {float(values[~valid][0]):g}; "
                         "give labels 0 and 1, or task: classification for more classes")
    return values.astype(np.int64)


def check_dataset_arrays(source: str, arrays: dict[str, np.ndarray], task: str | None = None):
    """Checked float32 inputs and labels of the four split arrays, and the task.

    Integer or bool 1-D labels mean classification (dense 0..K-1, K at most :data:`MAX_CLASSES`)
    unless ``task`` says regression; anything else is regression (targets made 2-D). ``task`` binary
    takes labels 0 and 1 of any numeric type, shape (n,) or (n, 1), and gives classification.
    ``source`` names the data in messages.

    Raises:
        InputError: naming the array and what is wrong with it.
    """
    _check_shapes(source, arrays)
    y_train, y_test, task = _check_targets(source, arrays["y_train"], arrays["y_test"], task)
    x_train = _as_float32(source, "x_train", arrays["x_train"])
    x_test = _as_float32(source, "x_test", arrays["x_test"])
    return x_train, y_train, x_test, y_test, task


def _check_targets(source: str, y_train: np.ndarray, y_test: np.ndarray, task: str | None):
    """Checked labels of one output and its task (see :func:`check_dataset_arrays`)."""
    if task == BINARY:
        y_train, y_test = binary_labels(source, "y_train", y_train), binary_labels(source, "y_test", y_test)
        task = CLASSIFICATION
    elif task != REGRESSION and y_train.dtype == np.bool_ and y_test.dtype == np.bool_:
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)  # True / False: classes 1 / 0
    integer_labels = np.issubdtype(y_train.dtype, np.integer) and y_train.ndim == 1
    if task == CLASSIFICATION and not integer_labels:
        raise InputError(f"{source}: task is classification but the labels are {y_train.dtype} values of "
                         f"shape {y_train.shape[1:] or '()'}; give integer class labels 0..K-1")
    if integer_labels and task != REGRESSION:
        task = CLASSIFICATION
        _check_labels(source, y_train, y_test)
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    else:
        task = REGRESSION
        y_train = _as_float32(source, "y_train", y_train).reshape(len(y_train), -1)
        y_test = _as_float32(source, "y_test", y_test).reshape(len(y_test), -1)
    return y_train, y_test, task


def _described(arrays: Arrays) -> str:
    return f"arrays {', '.join(arrays)}" if isinstance(arrays, dict) else "one unnamed array"


def check_named_arrays(source: str, arrays: dict[str, Arrays], task: str | None = None):
    """:func:`check_dataset_arrays` for named inputs and/or outputs: every input against every output,
    each output's labels and task on their own. Returns the checked arrays (named as given), the
    dataset's task (:data:`MULTI_OUTPUT` for several outputs) and the task of each named output.

    Raises:
        InputError: naming the array (``[input 'image', output 'label']``) and what is wrong with it.
    """
    for kind in ("x", "y"):
        train, test = arrays[f"{kind}_train"], arrays[f"{kind}_test"]
        if isinstance(train, dict) != isinstance(test, dict) or (
                isinstance(train, dict) and set(train) != set(test)):
            raise InputError(f"{source}: {kind}_train has {_described(train)} but {kind}_test has "
                             f"{_described(test)}; they must name the same arrays")
    ys = arrays["y_train"]
    if isinstance(ys, dict) and len(ys) > 1 and task is not None:
        raise InputError(f"{source}: data.task names one task, but the data has {len(ys)} outputs "
                         f"({', '.join(ys)}), each with the task its labels give (integers: classification, "
                         "floats: regression); leave data.task out")
    xs = arrays["x_train"] if isinstance(arrays["x_train"], dict) else {"": arrays["x_train"]}
    ys = ys if isinstance(ys, dict) else {"": ys}

    def part(kind: str, split: str, name: str) -> np.ndarray:
        array = arrays[f"{kind}_{split}"]
        return array[name] if name else array

    def where(x_name: str = "", y_name: str = "") -> str:
        named = [f"{k} '{n}'" for k, n in (("input", x_name), ("output", y_name)) if n]
        return f"{source} [{', '.join(named)}]" if named else source

    for x_name in xs:
        for y_name in ys:
            pair = {f"{k}_{split}": part(k, split, n) for k, n in (("x", x_name), ("y", y_name))
                    for split in ("train", "test")}
            _check_shapes(where(x_name, y_name), pair)
    checked_y: dict[str, tuple] = {}
    tasks: dict[str, str] = {}
    for y_name in ys:
        y_train, y_test, tasks[y_name] = _check_targets(where(y_name=y_name), part("y", "train", y_name),
                                                        part("y", "test", y_name), task)
        checked_y[y_name] = (y_train, y_test)
    out = {}
    for split in ("train", "test"):
        x = {n: _as_float32(where(x_name=n), f"x_{split}", part("x", split, n)) for n in xs}
        y = {n: checked_y[n][0 if split == "train" else 1] for n in ys}
        out[f"x_{split}"] = x.get("", x)
        out[f"y_{split}"] = y.get("", y)
    named_tasks = {} if "" in tasks else tasks
    overall = MULTI_OUTPUT if len(tasks) > 1 else next(iter(tasks.values()))
    return out["x_train"], out["y_train"], out["x_test"], out["y_test"], overall, named_tasks


def load_npz(path: Path, test_split: float = 0.2, seed: int = 0, task: str | None = None) -> Dataset:
    """A user dataset: an .npz holding x_train, y_train, x_test, y_test, or x and y to split (seeded,
    stratified for classes). Numeric arrays only: never unpickles. ``task`` (classification,
    regression or binary) overrides what the labels' type says.

    Raises:
        InputError: naming the array and what is wrong with it.
    """
    from edgeopt.sources import from_arrays

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


def load_dataset(spec) -> Dataset:
    """A built-in dataset by name, user data by path (.npz, folder of class folders, .csv), or a
    :class:`~edgeopt.sources.DataSpec` mapping (options, or a loader)."""
    from edgeopt.sources import DataSpec, load_source

    if isinstance(spec, DataSpec):
        return load_source(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]()
    path = check_path(spec, "data")
    if path.exists() or path.suffix.lower() in (".npz", ".csv"):
        if not path.exists():
            raise InputError(f"data: {path} not found (give a built-in name: {', '.join(BUILTIN)}, an .npz "
                             "or .csv file, or a folder of class folders)")
        return load_source(DataSpec(path=str(path)))
    raise InputError(f"data: unknown dataset '{spec}' (built-in: {', '.join(BUILTIN)}; or a path to an .npz "
                     "or .csv file, or to a folder of class folders)")


def steps_per_epoch(data: Dataset, spec: TrainSpec, batch_size: int | None = None) -> int:
    """Optimizer steps in one epoch of :func:`edgeopt.train.fit` (after the validation slice is taken out)."""
    n = data.n_train
    if spec.validation_split > 0:
        n -= max(1, int(round(n * spec.validation_split)))
    return int(np.ceil(n / (batch_size or spec.batch_size)))
