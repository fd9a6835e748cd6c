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
:func:`load_model_file` says how, in a :class:`LoadedModel`.

Only the loaders import TensorFlow (and Keras 3, for a Keras 3 file).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt import keras3
from edgeopt.data import shape_fits
from edgeopt.errors import InputError

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
class LoadedModel:
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
    import importlib
    import importlib.util
    import sys

    from edgeopt.kerasapi import keras

    names: list[str] = []
    for given in modules:
        if given not in _IMPORTED:
            try:
                if given.endswith(".py"):
                    path = Path(given)
                    if not path.is_file():
                        raise InputError(f"{where}: {given} not found")
                    spec = importlib.util.spec_from_file_location(f"edgeopt_custom_{path.stem}", path)
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[spec.name] = module
                    spec.loader.exec_module(module)
                else:
                    module = importlib.import_module(given)
            except InputError:
                raise
            except ModuleNotFoundError as exc:
                raise InputError(f"{where}: cannot import {given} ({exc}); give a module on the Python path "
                                 "or the path of a .py file") from None
            except Exception as exc:  # the user's code may raise anything
                raise InputError(f"{where}: importing {given} raised {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())}") from None
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
        InputError: the path is missing or holds none of these.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SAVEDMODEL
        raise InputError(f"{path} is a folder without saved_model.pb, so not a SavedModel; "
                         "give a .keras or .h5 file or a SavedModel folder")
    if not path.is_file():
        raise InputError(f"{path} not found")
    try:
        with open(path, "rb") as f:
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
    """The model's configuration documents as plain JSON data, read without Keras."""
    if kind == KERAS_ZIP:
        return [_json(path, _zip_member(path, "config.json"))]
    if kind == HDF5:
        return [_json(path, _hdf5_config(path))]
    return _savedmodel_configs(path)


def code_layers(configs: list[Any]) -> list[CodeLayer]:
    """Every object in the configuration whose deserialisation would run code from the file."""
    found: list[CodeLayer] = []
    stack: list[tuple[Any, int, str]] = [(c, 0, "model") for c in configs]
    while stack:
        node, depth, owner = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise InputError(f"the model's configuration is nested deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(node, dict):
            config = node.get("config")
            name = config.get("name", owner) if isinstance(config, dict) else owner
            class_name = node.get("class_name")
            if isinstance(class_name, str) and class_name in CODE_CLASSES:
                found.append(CodeLayer(str(name), CODE_CLASSES[class_name]))
            stack.extend((value, depth + 1, str(name)) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1, owner) for value in node)
    # A Python lambda inside a Lambda layer is one finding, not two.
    unique = {layer.name: layer for layer in reversed(found)}
    return sorted(unique.values(), key=lambda layer: layer.name)


def custom_classes(configs: list[Any]) -> list[str]:
    """Layer classes the configuration names from outside Keras (``module`` not keras/tf_keras):
    the user's own, which load only once their module is imported (``custom_objects``)."""
    found: set[str] = set()
    stack: list[Any] = list(configs)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, class_name = node.get("module"), node.get("class_name")
            if isinstance(module, str) and isinstance(class_name, str) and module.split(".")[0] not in (
                    "keras", "tf_keras", "builtins", "tensorflow", "tensorflow_model_optimization"):
                found.add(str(node.get("registered_name") or class_name))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


def check_no_code(path: Path, trust: bool, where: str) -> str:
    """Refuse a model file that would run code on loading, unless trusted; return its kind."""
    kind = sniff(path)
    if trust:
        return kind
    layers = code_layers(read_config(path, kind))
    if layers:
        listed = ", ".join(map(str, layers[:5])) + (f" and {len(layers) - 5} more" if len(layers) > 5 else "")
        raise InputError(f"{where}: {path} holds {listed}, whose code would run when the model is loaded; "
                         f"{TRUST_HINT}")
    return kind


def load_keras_model(path: Path, *, trust: bool = False, where: str = "model", samples=None,
                     single_io: bool = True):
    """Load a saved Keras model as tf_keras without running code unless trusted: :func:`load_model_file`.

    Returns:
        The tf_keras model (for how it was loaded, call :func:`load_model_file`).
    """
    return load_model_file(path, trust=trust, where=where, samples=samples, single_io=single_io).model


def load_model_file(path: Path, *, trust: bool = False, where: str = "model", samples=None,
                    single_io: bool = True) -> LoadedModel:
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
    path = Path(path)
    kind = check_no_code(path, trust, where)
    if kind == SAVEDMODEL and not (path / "keras_metadata.pb").is_file():
        raise InputError(f"{where}: {path} is a TensorFlow SavedModel without Keras metadata; this step "
                         "needs a Keras model (save it with model.save('model.keras'))")
    version = keras_version(path, kind)
    # Keras 3 saves no SavedModel with Keras metadata (its model.export() writes a plain one).
    from_keras3 = kind != SAVEDMODEL and keras3.saved_by_keras3(
        version, None if version else read_config(path, kind)[0])
    if from_keras3:
        loaded = _load_keras3(path, kind, version, trust=trust, where=where, samples=samples)
    else:
        if kind == KERAS_ZIP:  # name the user's classes nobody registered, rather than Keras' TypeError
            from edgeopt.kerasapi import keras

            known = keras.utils.get_custom_objects()
            missing = [name for name in custom_classes(read_config(path, kind))
                       if name not in known and name.split(">")[-1] not in known]
            if missing:
                raise InputError(f"{where}: {path} uses custom classes {', '.join(missing)}; name the module "
                                 "that defines them with --custom-objects MODULE (recipe: custom_objects: "
                                 "[MODULE]) and --trust-model")
        loaded = LoadedModel(_load_tf_keras(path, kind, trust=trust, where=where), path, kind,
                             SOURCE_TF_KERAS, version)
    if single_io:
        check_single_io(loaded.model, f"{where}: {path}")
    return loaded


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
            hint = ("; name the module that defines it with --custom-objects MODULE (recipe: "
                    "custom_objects: [MODULE]) and --trust-model")
        raise InputError(f"{where}: {path} could not be loaded as a tf_keras model "
                         f"({type(exc).__name__}: {reason}){hint}") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"{where}: {path} did not load as a Keras model (got {type(model).__name__})")
    return model


def _load_keras3(path: Path, kind: str, version: str | None, *, trust: bool, where: str,
                 samples) -> LoadedModel:
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
    return LoadedModel(model, path, kind, SOURCE_KERAS3, version, layers=len(model.layers),
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
    """Keras' per-layer metadata of a SavedModel: JSON documents inside keras_metadata.pb."""
    meta = path / "keras_metadata.pb"
    if not meta.is_file():
        return []
    raw = meta.read_bytes()
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"{meta} is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    # The protobuf holds each layer's JSON as a plain string: find the class names without
    # deserialising anything. A layer's JSON starts with {"name": ... or {"class_name": ...
    configs = []
    for match in re.finditer(rb'"class_name":\s*"([^"]+)"', raw):
        window = raw[match.start(): match.start() + 4096]
        name = re.search(rb'"name":\s*"([^"]+)"', window)
        configs.append({"class_name": match.group(1).decode("utf-8", "replace"),
                        "config": {"name": name.group(1).decode("utf-8", "replace") if name else "?"}})
    return configs


def _json(path: Path, raw: bytes) -> Any:
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: the model configuration is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: the model configuration is not valid JSON "
                         f"({type(exc).__name__})") from None
