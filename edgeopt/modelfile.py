"""Saved Keras models in: read what a file holds before Keras runs any of it, then load it safely.

A saved Keras model can carry code: a ``Lambda`` layer stores its function as Python bytecode (legacy
HDF5 and SavedModel) or source (the Keras 3 format), and Keras runs it while loading. Keras' own
``safe_mode`` covers only the zip ``.keras`` format, and an HDF5 file renamed ``.keras`` slips past it.
So edgeopt decides by the bytes, not the name: :func:`sniff` tells a zip ``.keras``, an HDF5 file and
a SavedModel folder apart, :func:`code_layers` reads the model's configuration as plain JSON (never
unpickled, never executed) and lists every layer that would run code, and :func:`load_keras_model`
refuses such a file unless the user trusts it (``--trust-model``, recipe ``trust_model: true``).
A file saved by Keras 3 (told by its recorded version, else by its configuration's shape) is checked the
same way, then checked for layers tf_keras lacks before Keras 3 reads it, loaded by Keras 3, rebuilt as
an equivalent tf_keras model (:mod:`edgeopt.keras3`) and verified output against output;
:func:`load_model_file` says how, in a :class:`ModelFile`.

Only the loaders import TensorFlow (and Keras 3, for a Keras 3 file).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from edgeopt import keras3, usercode
from edgeopt.dataset import shape_fits
from edgeopt.errors import InputError
from edgeopt.internals import builtin_layer_classes
from edgeopt.paths import open_regular, path_problem

KERAS_ZIP = "keras"
HDF5 = "hdf5"
SAVEDMODEL = "savedmodel"

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_CONFIG_BYTES = 64 * 1024 * 1024  # a model's JSON configuration; weights are stored apart
MAX_CONFIG_DEPTH = 200
# Class names whose configuration carries a function Keras would deserialise and run.
CODE_CLASSES = {"Lambda": "Lambda layer", "__lambda__": "Python lambda"}
SOURCE_TF_KERAS = "tf_keras"
SOURCE_KERAS3 = "keras3"
SOURCE_GRAPH = "savedmodel"  # a SavedModel without Keras metadata: a TensorFlow graph, no Keras model
SIGNATURES = ("serving_default", "serve")  # what tf.saved_model.save and Keras 3 model.export write
VERIFIED_ON_SAMPLES = "samples"  # the caller's inputs
VERIFIED_ON_SYNTHETIC = "synthetic"  # seeded random inputs of the model's shapes
NOT_VERIFIED = "none"  # inputs of a kind edgeopt cannot make up (strings)
TRUST_HINT = "pass --trust-model (recipe: trust_model: true) only if you trust where this file came from"


@dataclass(frozen=True)
class CodeLayer:
    """A layer (or object) whose loading would run code from the file."""

    name: str
    what: str

    def __str__(self) -> str:
        return f"{self.what} '{self.name}'"


@dataclass(frozen=True)
class ModelFile:
    """A tf_keras model loaded from a file, and how: the facts a report records about its source.

    ``max_abs_diff`` and ``layers`` are set for a Keras 3 file, which is rebuilt: the largest output
    difference between the Keras 3 model and its tf_keras rebuild, and the rebuild's layer count;
    ``tolerance`` is what that difference had to stay within, given ``output_scale``, the largest
    absolute output of the Keras 3 model on the same inputs (:func:`edgeopt.keras3.tolerance`).
    """

    model: Any
    path: Path
    kind: str  # KERAS_ZIP, HDF5 or SAVEDMODEL
    source: str  # SOURCE_TF_KERAS or SOURCE_KERAS3
    keras_version: str | None = None
    layers: int | None = None
    max_abs_diff: float | None = None
    tolerance: float | None = None
    output_scale: float | None = None
    verified_on: str | None = None

    def facts(self) -> dict[str, Any]:
        """The source facts as JSON data (``None`` fields left out)."""
        facts = {"source": self.source, "format": self.kind, "keras_version": self.keras_version,
                 "layers": self.layers, "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance,
                 "output_scale": self.output_scale, "verified_on": self.verified_on}
        return {key: value for key, value in facts.items() if value is not None}


@dataclass(frozen=True)
class GraphModel:
    """A SavedModel without Keras metadata (Keras 3 ``model.export()``, ``tf.saved_model.save``).

    There is no Keras model to prune, cluster or fine-tune: edgeopt converts its serving signature
    as it is (float32, or post-training quantized) and measures the ``.tflite``. Loading it runs
    TensorFlow graph functions only, never Python code from the folder.
    """

    path: Path
    signature: str
    input_name: str
    input_shape: tuple  # without the batch dimension; None for a free dimension
    output_name: str
    output_shape: tuple

    def facts(self) -> dict[str, Any]:
        return {"source": SOURCE_GRAPH, "format": SAVEDMODEL, "signature": self.signature,
                "input": self.input_name, "output": self.output_name}

    def tflite_converter(self):
        """The TFLite converter of its serving signature (:func:`edgeopt.convert.convert` asks for it)."""
        from edgeopt.kerasapi import tf

        return tf.lite.TFLiteConverter.from_saved_model(str(self.path), signature_keys=[self.signature])


def is_graph_savedmodel(path: Path) -> bool:
    """A SavedModel folder without Keras metadata."""
    path = Path(path)
    return (path / "saved_model.pb").is_file() and not (path / "keras_metadata.pb").is_file()


def load_graph_model(path: Path, where: str = "model") -> GraphModel:
    """Read a graph SavedModel's serving signature: one float input and one output.

    Raises:
        InputError: TensorFlow cannot load the folder, it has no serving signature, or the signature
            has other than one input and one output or a non-float input.
    """
    from edgeopt.kerasapi import tf

    path = Path(path)
    label = f"{where}: {path} (a SavedModel without Keras metadata)"
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for a folder it cannot read
        raise InputError(f"{label} could not be loaded by TensorFlow "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
    signatures = dict(loaded.signatures)
    key = next((k for k in SIGNATURES if k in signatures), next(iter(signatures), None))
    if key is None:
        raise InputError(f"{label} has no serving signature; save it with tf.saved_model.save(module, path, "
                         "signatures=...) or Keras 3 model.export(path)")
    function = signatures[key]
    inputs = function.structured_input_signature[1]
    outputs = function.structured_outputs
    if len(inputs) != 1 or not isinstance(outputs, dict) or len(outputs) != 1:
        raise InputError(f"{label}: signature '{key}' has {len(inputs)} inputs and "
                         f"{len(outputs) if isinstance(outputs, dict) else '?'} outputs; edgeopt converts "
                         "SavedModels with one input and one output")
    (input_name, spec), (output_name, out_spec) = next(iter(inputs.items())), next(iter(outputs.items()))
    if not spec.dtype.is_floating:
        raise InputError(f"{label}: input '{input_name}' is {spec.dtype.name}; edgeopt feeds float inputs")
    dims = list(spec.shape) if spec.shape.rank is not None else []
    out_dims = list(out_spec.shape) if out_spec.shape.rank is not None else []
    return GraphModel(path=path, signature=key, input_name=input_name, input_shape=tuple(dims[1:]),
                      output_name=output_name, output_shape=tuple(out_dims[1:]))


_IMPORTED: dict[str, list[str]] = {}  # module given -> the object names it registered (import once)


def use_custom_objects(modules: list[str], trust: bool, where: str = "custom_objects") -> list[str]:
    """Import the modules that define a model's custom layers and objects and register them with
    tf_keras, so its files load and TFMOT can rebuild them; return the names registered.

    A module is a dotted name on ``sys.path`` or a ``.py`` file. Importing runs its code, so it needs
    ``trust``. It registers its ``CUSTOM_OBJECTS`` dict if it has one, else every class it defines.

    Raises:
        InputError: modules without trust, a module that cannot be found, or one whose import raises.
    """
    if not modules:
        return []
    if not trust:
        raise InputError(f"{where}: importing {', '.join(modules)} runs its code; {TRUST_HINT}")
    from edgeopt.kerasapi import keras

    names: list[str] = []
    for given in modules:
        if given not in _IMPORTED:
            module = usercode.import_module(given, where)
            found = getattr(module, "CUSTOM_OBJECTS", None)
            if not isinstance(found, dict):
                found = {name: value for name, value in vars(module).items()
                         if isinstance(value, type) and value.__module__ == module.__name__}
            keras.utils.get_custom_objects().update(found)
            _IMPORTED[given] = sorted(found)
        names += _IMPORTED[given]
    return names


def sniff(path: Path) -> str:
    """The container format by content: ``keras`` (zip), ``hdf5`` or ``savedmodel``.

    Raises:
        InputError: the path is missing, too long or a symbolic link loop, is not a regular file (a
            FIFO, which would block reading) or holds none of these.
    """
    path = Path(path)
    problem = path_problem(path)  # is_dir() and is_file() would read a link loop as "not found"
    if problem is not None:
        raise InputError(problem)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SAVEDMODEL
        raise InputError(f"{path} is a folder without saved_model.pb, so not a SavedModel; "
                         "give a .keras or .h5 file or a SavedModel folder")
    if not path.exists():
        raise InputError(f"{path} not found")
    try:
        with open_regular(path, "model") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if head == HDF5_MAGIC:
        return HDF5
    if zipfile.is_zipfile(path):
        return KERAS_ZIP
    raise InputError(f"{path} is not a saved Keras model (neither a .keras zip, an HDF5 file nor a "
                     "SavedModel folder)")


def read_config(path: Path, kind: str) -> list[Any]:
    """The model's configuration documents as plain JSON data, read without Keras, the way Keras
    parses them (a JSON parser, so any spelling of a name is seen as Keras sees it).

    Raises:
        InputError: the file is damaged, or its configuration is not a model's (a list, a string,
            layers that are not a list of layer objects).
    """
    if kind == KERAS_ZIP:
        configs = [_json(path, _zip_member(path, "config.json"))]
    elif kind == HDF5:
        configs = [_json(path, _hdf5_config(path))]
    else:
        return _savedmodel_configs(path)
    _check_model_config(configs[0], path)
    return configs


def _check_model_config(config: Any, path: Path) -> None:
    """A model's configuration is an object with a class name and a config, whose layers (if any)
    are a list of objects with a class name: refuse anything else before Keras trips over it."""
    problem = None
    if not isinstance(config, dict):
        problem = f"is a JSON {_json_kind(config)}, not an object"
    elif not isinstance(config.get("class_name"), str):
        problem = "has no class_name"
    else:
        body = config.get("config")
        layers = body.get("layers", []) if isinstance(body, dict) else body
        if not isinstance(body, dict | list):
            problem = f"has a config that is a JSON {_json_kind(body)}, not an object"
        elif not isinstance(layers, list):
            problem = f"has layers that are a JSON {_json_kind(layers)}, not a list"
        elif not all(isinstance(layer, dict) and isinstance(layer.get("class_name"), str)
                     for layer in layers):
            problem = "has a layer that is not an object with a class_name"
    if problem:
        raise InputError(f"{path}: the model configuration {problem}, so it is not a saved Keras model; "
                         "save the model again with model.save")


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _class_names(node: dict) -> list[str]:
    """The class a config object names, as Keras looks it up: by ``class_name`` or ``registered_name``,
    whose last part counts (``package>Name``, ``module.Name`` reach the same class)."""
    names = (node.get("class_name"), node.get("registered_name"))
    return [name.replace(">", ".").rsplit(".", 1)[-1] for name in names if isinstance(name, str)]


def _walk(configs: list[Any]) -> Iterator[tuple[dict, str]]:
    """Every JSON object in the configuration, with the name of the layer that holds it."""
    stack: list[tuple[Any, int, str]] = [(c, 0, "model") for c in configs]
    while stack:
        node, depth, owner = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise InputError(f"the model's configuration is nested deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(node, dict):
            config = node.get("config")
            name = config.get("name", owner) if isinstance(config, dict) else node.get("name", owner)
            yield node, str(name)
            stack.extend((value, depth + 1, str(name)) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1, owner) for value in node)


def code_layers(configs: list[Any]) -> list[CodeLayer]:
    """Every object in the configuration whose deserialisation would run code from the file: a
    ``Lambda`` layer or ``__lambda__`` object by any spelling of its name, and any function stored as
    bytecode (``function_type: lambda``, ``<name>_type: lambda`` in wrappers), nested or not."""
    found: list[CodeLayer] = []
    for node, name in _walk(configs):
        classes = [CODE_CLASSES[c] for c in _class_names(node) if c in CODE_CLASSES]
        bytecode = any(isinstance(key, str) and key.endswith("_type") and value == "lambda"
                       for key, value in node.items())
        if classes or bytecode:
            found.append(CodeLayer(name, classes[0] if classes else "Python function stored as bytecode"))
    # A Python lambda inside a Lambda layer is one finding, not two.
    unique = {layer.name: layer for layer in reversed(found)}
    return sorted(unique.values(), key=lambda layer: layer.name)


def custom_classes(configs: list[Any]) -> list[str]:
    """Classes the configuration names from outside Keras (``module`` not keras/tf_keras): the user's
    own. Keras imports such a module to find the class (running its code) unless it is registered,
    which ``custom_objects`` does."""
    found: set[str] = set()
    for node, _ in _walk(configs):
        module, class_name = node.get("module"), node.get("class_name")
        if isinstance(module, str) and isinstance(class_name, str) and module.split(".")[0] not in (
                "keras", "tf_keras", "builtins", "tensorflow", "tensorflow_model_optimization"):
            found.add(str(node.get("registered_name") or class_name))
    return sorted(found)


def unknown_layer_classes(configs: list[Any]) -> list[str]:
    """A SavedModel's layers whose class tf_keras does not know and nobody registered: tf_keras would
    revive them from their traced graphs as stand-ins, which are not the user's layers."""
    layers = [node for node in configs if node.get(IDENTIFIER) in LAYER_IDENTIFIERS]
    if not layers:
        return []
    from edgeopt.kerasapi import keras

    known = builtin_layer_classes() | set(keras.utils.get_custom_objects())
    return sorted({str(node.get("class_name")) for node in layers
                   if not isinstance(node.get("class_name"), str)
                   or not ({node["class_name"], *_class_names(node)} & known)})


def registered_names() -> set[str]:
    """Names registered as custom objects with tf_keras or, in a process that has imported it, with
    Keras 3 (``register_keras_serializable``): objects either Keras finds without importing anything."""
    from edgeopt.kerasapi import keras

    names = set(keras.utils.get_custom_objects())
    if "keras" in sys.modules:  # Keras 3, imported by the user's code or a Keras 3 load
        names |= set(keras3.keras3_module().saving.get_custom_objects())
    return names


CUSTOM_HINT = ("name the module that defines them with --custom-objects MODULE (recipe: custom_objects: "
               "[MODULE]) and --trust-model")


def check_no_code(path: Path, trust: bool, where: str) -> str:
    """Refuse a model file that would run code on loading, unless trusted; return its kind.

    One rule for every format (``.keras`` of either Keras, ``.h5``, SavedModel) and every role (the
    model, a teacher, a study's base): the parsed configuration, nested models and wrapped layers
    included, may hold no Lambda, no function stored as bytecode and no class from a module Keras
    would import, unless the user trusts the file; classes from other modules must be registered.
    """
    kind = sniff(path)
    configs = read_config(path, kind)
    layers = [] if trust else code_layers(configs)
    if layers:
        listed = ", ".join(map(str, layers[:5])) + (f" and {len(layers) - 5} more" if len(layers) > 5 else "")
        raise InputError(f"{where}: {path} holds {listed}, whose code would run when the model is loaded; "
                         f"{TRUST_HINT}")
    foreign = custom_classes(configs)
    if foreign:  # registered (custom_objects, or the API user's own process): Keras imports nothing
        known = registered_names()
        foreign = [name for name in foreign if name not in known and name.split(">")[-1] not in known]
    if foreign:
        raise InputError(f"{where}: {path} uses custom classes {', '.join(foreign)}, whose modules Keras "
                         f"would import (running their code); {CUSTOM_HINT}")
    if kind == SAVEDMODEL and (unknown := unknown_layer_classes(configs)):
        raise InputError(f"{where}: {path} holds layers of classes tf_keras does not know "
                         f"({', '.join(unknown)}); {CUSTOM_HINT}")
    return kind


def load_keras_model(path: Path, *, trust: bool = False, where: str = "model", samples=None,
                     single_io: bool = True):
    """Load a saved Keras model as tf_keras without running code unless trusted: :func:`load_model_file`.

    Returns:
        The tf_keras model (for how it was loaded, call :func:`load_model_file`).
    """
    return load_model_file(path, trust=trust, where=where, samples=samples, single_io=single_io).model


def load_model_file(path: Path, *, trust: bool = False, where: str = "model", samples=None,
                    single_io: bool = True) -> ModelFile:
    """Load a saved model (``.keras``, ``.h5``, SavedModel; tf_keras or Keras 3) as a tf_keras model.

    A Keras 3 file is loaded by Keras 3 (``safe_mode`` unless trusted), rebuilt as tf_keras and verified
    on ``samples`` (or, without them, on a few seeded random inputs of the model's shapes).

    Args:
        path: the file or SavedModel folder.
        trust: the user vouches for the file: code in it (Lambda layers) may run.
        where: what the file is to the caller, for messages (``model``, ``stages[1].teacher``).
        samples: inputs to verify a Keras 3 rebuild on: an array, or a list of arrays for several inputs;
            or a function of the tf_keras rebuild that returns them (named data is matched by its names).
        single_io: refuse a model without exactly one input and one output (:func:`check_single_io`):
            a distillation teacher; the model edgeopt compresses may have several (named data).

    Raises:
        InputError: not a model, code without trust, a SavedModel without Keras metadata, a Keras 3
            model with layers tf_keras lacks or whose rebuild computes something else, or (with
            ``single_io``) a model with several inputs or outputs.
    """
    load = load_keras3_file if is_keras3_file(path) else load_tf_keras_file
    loaded = load(path, trust=trust, where=where, samples=samples)
    if single_io:
        check_single_io(loaded.model, f"{where}: {Path(path)}")
    return loaded


def is_keras3_file(path: Path) -> bool:
    """A ``.keras`` or ``.h5`` file saved by Keras 3 (told by its recorded version, else by its
    configuration's shape), read without Keras; False for anything else, or a file it cannot read
    (whose loader then says why). Keras 3 saves no SavedModel with Keras metadata."""
    try:
        kind = sniff(Path(path))
        if kind == SAVEDMODEL:
            return False
        version = keras_version(Path(path), kind)
        return keras3.saved_by_keras3(version, None if version else read_config(Path(path), kind)[0])
    except InputError:
        return False


def load_tf_keras_file(path: Path, *, trust: bool = False, where: str = "model", samples=None) -> ModelFile:
    """A file saved by tf_keras (``.keras``, ``.h5``, SavedModel with Keras metadata), loaded as it is
    (``samples`` unused: nothing is rebuilt), after :func:`check_no_code`."""
    path = Path(path)
    kind = check_no_code(path, trust, where)
    if kind == SAVEDMODEL and not (path / "keras_metadata.pb").is_file():
        raise InputError(f"{where}: {path} is a TensorFlow SavedModel without Keras metadata; this step "
                         "needs a Keras model (save it with model.save('model.keras'))")
    version = keras_version(path, kind)
    model = _load_tf_keras(path, kind, trust=trust, where=where)
    return ModelFile(model, path, kind, SOURCE_TF_KERAS, version)


def load_keras3_file(path: Path, *, trust: bool = False, where: str = "model", samples=None) -> ModelFile:
    """A file saved by Keras 3, loaded by Keras 3, rebuilt as tf_keras and verified on ``samples``
    (:func:`load_model_file`), after :func:`check_no_code`."""
    path = Path(path)
    kind = check_no_code(path, trust, where)
    return _load_keras3(path, kind, keras_version(path, kind), trust=trust, where=where, samples=samples)


def keras_version(path: Path, kind: str) -> str | None:
    """The Keras version that saved the file, as it recorded it (None if it did not), read without Keras."""
    raw: Any = None
    if kind == KERAS_ZIP:
        with contextlib.suppress(InputError, ValueError, AttributeError):
            raw = _json(path, _zip_member(path, "metadata.json")).get("keras_version")
    elif kind == HDF5:
        import h5py

        with contextlib.suppress(OSError), h5py.File(path, "r") as handle:
            raw = handle.attrs.get("keras_version")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw if isinstance(raw, str) and raw else None


def _load_tf_keras(path: Path, kind: str, *, trust: bool, where: str):
    from edgeopt.kerasapi import keras

    try:
        if kind == HDF5:
            import h5py

            # By content, so an HDF5 file renamed .keras takes the path whose code was just checked.
            with h5py.File(path, "r") as handle:
                model = keras.models.load_model(handle, compile=False)
        elif kind == KERAS_ZIP:
            with _suffixed(path, ".keras") as named:
                model = keras.saving.load_model(named, compile=False, safe_mode=not trust)
        else:
            model = keras.models.load_model(path, compile=False)
    except InputError:
        raise
    except Exception as exc:  # Keras raises many types for a file that is not a model it can read
        reason = " ".join(str(exc).split())
        hint = ""
        if "Unknown layer" in reason or "Could not locate class" in reason or "Unknown object" in reason:
            hint = f"; {CUSTOM_HINT}"
        raise InputError(f"{where}: {path} could not be loaded as a tf_keras model "
                         f"({type(exc).__name__}: {reason}){hint}") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"{where}: {path} did not load as a Keras model (got {type(model).__name__})")
    return model


def _load_keras3(path: Path, kind: str, version: str | None, *, trust: bool, where: str,
                 samples) -> ModelFile:
    """Keras 3 reads the file, tf_keras gets an equivalent rebuild, and the two are compared."""
    label = f"{where}: {path} (Keras {version or '3'})"
    # Refuse layers tf_keras lacks from the configuration alone, before Keras 3 reads anything.
    keras3.translate(read_config(path, kind)[0], label)
    keras = keras3.keras3_module()
    try:
        with _suffixed(path, ".keras" if kind == KERAS_ZIP else ".h5") as named:
            original = keras.saving.load_model(named, compile=False, safe_mode=not trust)
    except Exception as exc:  # Keras raises many types for a file that is not a model it can read
        raise InputError(f"{label} could not be loaded by Keras 3 "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    if not isinstance(original, keras.Model):
        raise InputError(f"{label} did not load as a Keras model (got {type(original).__name__})")
    model = keras3.rebuild(original, label)
    verified_on = VERIFIED_ON_SAMPLES
    if callable(samples):  # the caller picks them by the model's input names (and may refuse it)
        samples = samples(model)
    if samples is not None and not isinstance(samples, dict | list | tuple) and len(model.inputs) == 1:
        wanted, given = tuple(model.input_shape[1:]), tuple(samples.shape[1:])
        if not shape_fits(wanted, given):
            raise InputError(f"{label} takes inputs of shape {wanted} but the data's samples have shape "
                             f"{given}; is this the model for this data?")
    if samples is None:
        samples = keras3.synthetic_samples(model)
        verified_on = VERIFIED_ON_SYNTHETIC if samples is not None else NOT_VERIFIED
    tolerance = keras3.tolerance(model)
    difference = scale = None
    if samples is not None:
        # Rounding grows with the outputs: a trained model's logits of 20 differ by 1e-5 (float32)
        # through its 50 layers, while a wrong rebuild is off by whole percents of them.
        scale = keras3.output_scale(original, samples)
        tolerance = keras3.tolerance(model, scale)
        difference = keras3.verify_rebuild(original, model, samples)
        if not difference <= tolerance:
            raise InputError(f"{label} rebuilt as tf_keras gives outputs up to {difference:.3g} away from "
                             f"the Keras 3 model's (more than {tolerance:.3g}, the tolerance for outputs up "
                             f"to {scale:.3g}), so the rebuild is not the same model; {keras3.STILL_WORKS}")
    return ModelFile(model, path, kind, SOURCE_KERAS3, version, layers=len(model.layers),
                       max_abs_diff=difference, tolerance=tolerance, output_scale=scale,
                       verified_on=verified_on)


def check_single_io(model, where: str) -> None:
    """edgeopt's stages, data and metrics take one input and one output tensor today."""
    inputs, outputs = len(model.inputs or []), len(model.outputs or [])
    if inputs != 1 or outputs != 1:
        raise InputError(f"{where} has {inputs} inputs and {outputs} outputs; edgeopt supports models "
                         "with one input and one output (split the model, or export it as one of each)")


# -- readers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _suffixed(path: Path, suffix: str) -> Iterator[Path]:
    """Keras picks the format by the name's ending (.keras zip, .h5): give it the one the bytes have."""
    if path.suffix == suffix:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edgeopt-model-") as folder:
        link = Path(folder) / f"model{suffix}"
        link.symlink_to(path.resolve())
        yield link


def _zip_member(path: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
            if info.file_size > MAX_CONFIG_BYTES:
                raise InputError(f"{path}: {member} is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
            return archive.read(member)
    except KeyError:
        raise InputError(f"{path} is a zip file without {member}, so not a saved Keras model") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path} is not a readable .keras file ({exc})") from None


def _hdf5_config(path: Path) -> bytes:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except OSError as exc:
        raise InputError(f"{path} is not a readable HDF5 model file ({exc})") from None
    if raw is None:
        raise InputError(f"{path} is an HDF5 file without a model configuration (weights only?); "
                         "save the whole model with model.save")
    return raw if isinstance(raw, bytes) else str(raw).encode()


def _savedmodel_configs(path: Path) -> list[Any]:
    """Keras' per-object metadata of a SavedModel, parsed as tf_keras parses it: the protobuf
    ``SavedMetadata`` (read with protobuf itself), whose every node holds one JSON document.

    Each document is returned whole, with its node's ``identifier`` added under ``IDENTIFIER``, so
    that the checks see exactly what tf_keras would deserialise, however its JSON is spelled."""
    meta = path / "keras_metadata.pb"
    if not meta.is_file():
        return []
    raw = meta.read_bytes()
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"{meta} is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    metadata = _saved_metadata_type()()
    try:
        metadata.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{meta} is damaged: it is not Keras' SavedMetadata protobuf ({exc}); "
                         "save the model again") from None
    configs = []
    for node in metadata.nodes:
        document = _json(meta, node.metadata.encode()) if node.metadata else {}
        if not isinstance(document, dict):
            raise InputError(f"{meta}: the metadata of object '{node.node_path}' is not a JSON object; "
                             "save the model again")
        configs.append({**document, IDENTIFIER: node.identifier})
    return configs


IDENTIFIER = "__edgeopt_identifier__"  # a SavedModel node's kind (``_tf_keras_layer``), kept beside its JSON
# The SavedModel nodes tf_keras revives as layers or models from their class name.
LAYER_IDENTIFIERS = ("_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_network", "_tf_keras_model",
                     "_tf_keras_sequential", "_tf_keras_rnn_layer")


@functools.cache
def _saved_metadata_type():
    """tf_keras' ``SavedMetadata`` message (tf_keras/protobuf/saved_metadata.proto), declared here so
    that reading it needs protobuf only, not TensorFlow: field numbers as tf_keras defines them."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="edgeopt_keras_saved_metadata.proto",
                                               package="edgeopt_keras", syntax="proto3")
    saved_object = proto.message_type.add(name="SavedObject")
    for name, number, kind in (("node_id", 2, field.TYPE_INT32), ("node_path", 3, field.TYPE_STRING),
                               ("identifier", 4, field.TYPE_STRING), ("metadata", 5, field.TYPE_STRING)):
        saved_object.field.add(name=name, number=number, type=kind, label=field.LABEL_OPTIONAL)
    saved_metadata = proto.message_type.add(name="SavedMetadata")
    saved_metadata.field.add(name="nodes", number=1, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
                             type_name=".edgeopt_keras.SavedObject")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("edgeopt_keras.SavedMetadata"))


def _json(path: Path, raw: bytes) -> Any:
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: the model configuration is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: the model configuration is not valid JSON "
                         f"({type(exc).__name__})") from None
