"""The dataset type every source returns: :class:`Dataset`, a fixed train/test split, and the checks
every source's arrays pass (:func:`check_dataset_arrays`, :func:`check_named_arrays`).

It sits below :mod:`edgeopt.sources` (every kind of data, built-in and the user's, and their registry)
and :mod:`edgeopt.data` (the choice between them), which make datasets, and below everything that reads
them (training, the techniques, evaluation), so none of them imports the others to reach the type.
``edgeopt.data`` re-exports its names. Each dataset intake returns carries the facts its source declares
(:class:`SourceFacts`, :attr:`Dataset.source`): what the code using it asks, instead of the source's name.

A model with several inputs or outputs takes named arrays: ``x_train`` (and the others) may be a
dict from input (output) name to array. :meth:`Dataset.for_model` matches the names with the
model's and puts them in its order; each output keeps its own task (:attr:`Dataset.tasks`), and
:meth:`Dataset.output` views one output as a single-output dataset, which every single-output rule
(labels, heads, scoring) then applies to unchanged.

This module imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeopt.errors import InputError
from edgeopt.types import OUTPUT_SEPARATOR, TASK_METRIC, Task

CLASSIFICATION = "classification"
REGRESSION = "regression"
# Binary is classification with labels 0 and 1, scored by one output unit when the model has one (a
# sigmoid probability or a logit); as a dataset's task it is stored as classification. A ``data:``
# mapping may state it to have 0/1 labels checked (and float or bool 0/1 labels read as classes).
BINARY = "binary"
# The task of a dataset (and a report) with several named outputs, each with its own task; a metric
# of one of them is keyed ``<metric>/<output name>`` (``accuracy/label``).
MULTI_OUTPUT = Task.MULTI_OUTPUT.value

MAX_CLASSES = 10_000
MAX_NPZ_ARRAY_BYTES = 4 * 1024**3  # datasets are loaded into memory whole
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


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
class SourceFacts:
    """What the kind of data a dataset was read from tells the code that uses it: declared by each
    source of :data:`edgeopt.sources.SOURCES` and set on every :class:`Dataset` intake returns
    (:attr:`Dataset.source`), so that callers ask these facts and never test the source's name.
    """

    # Read without a split of its own (a folder with no train/ and test/ folders), the data is the
    # user's test set: ``edgeopt evaluate`` scores it whole by default.
    whole_when_unsplit: bool = False
    # Class names are the sorted names of its class folders (else, when named: sorted text labels).
    folder_classes: bool = False
    # It can carry named arrays, one per input and output (False: one unnamed input and output only).
    named_arrays: bool = True
    # Its inputs are images read at ``data.image_size``: pixel values 0..255 times ``data.scale``.
    pixels: bool = False
    # What one sample is called in messages ("images").
    samples: str = "samples"


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
    # The facts of the source it was read from, set by intake (edgeopt.data.load_dataset); not in the
    # report (describe() writes the preprocessing, as before).
    source: SourceFacts = field(default=SourceFacts(), compare=False, repr=False)

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
            prefix = "x" if kind == "inputs" else "y"
            hint = ("; a CSV file or an image folder gives one input and one output: give named arrays in "
                    "an .npz (x_train/<input name>, y_train/<output name>) or from a loader"
                    if not self.source.named_arrays else
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
