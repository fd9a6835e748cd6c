"""A recipe's model, loaded and fitted to its data, through one registry of model loaders.

:data:`LOADERS` maps a kind of model to its :class:`Loader`: a zoo model built for the data, a SavedModel
graph (converted and measured, never trained or wrapped), a Keras 3 file (rebuilt in tf_keras and
verified), a tf_keras file (``.keras``, ``.h5``, SavedModel with Keras metadata). :func:`load_model`
asks the first that claims the recipe's model and returns one :class:`LoadedModel`, which says what the
model can do (``trainable``, ``wrappable``, ``has_keras_model``, its inputs and outputs) and whether it
comes as the user gave it, with trained weights to keep (``pretrained``): callers ask it, or before
loading its loader (:func:`loader_for`, :func:`is_pretrained`, :func:`model_task`), never the kind,
and :func:`check_capabilities` refuses, before any training, a stage it cannot do (what each stage
needs, its technique says). :func:`check_model_files` refuses, before any loading, a file
that would run code without ``--trust-model``. It sits below :mod:`edgeopt.pipeline`, which sequences
the run, and below :mod:`edgeopt.diagnose`, which loads a recipe's model too. TensorFlow is imported
inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.data import BUILTIN
from edgeopt.dataset import Dataset, shape_fits
from edgeopt.errors import InputError
from edgeopt.modelfile import (
    ModelFile,
    check_no_code,
    is_graph_savedmodel,
    is_keras3_file,
    load_graph_model,
    load_keras3_file,
    load_tf_keras_file,
    use_custom_objects,
)
from edgeopt.recipe import Recipe
from edgeopt.techniques import TECHNIQUES
from edgeopt.techniques.base import wrappable
from edgeopt.zoo import ZOO, build

VERIFY_SAMPLES = 256  # training inputs a Keras 3 model's tf_keras rebuild is compared on


@dataclass(frozen=True)
class Port:
    """One input or output of a model: its name ('' when it has none) and shape without the batch
    dimension (None for a free dimension)."""

    name: str
    shape: tuple


@dataclass(frozen=True)
class LoadedModel:
    """A recipe's model as loaded, and what it can do: the one type every caller asks.

    ``trainable``: edgeopt can train it and fine-tune its stages; ``wrappable``: TFMOT can wrap it and
    edgeopt read its graph (prune, cluster, quantization-aware training, channel pruning: a Sequential or
    Functional Keras model, :func:`~edgeopt.techniques.base.wrappable`); ``graph``: the loader's fact
    that there is no Keras model (a SavedModel graph: converted as it is, post-training quantized at
    most), which callers ask as :attr:`has_keras_model`; ``inputs``, ``outputs``: its ports, in its
    order; ``limits``: when it is not trainable, why, as ``is ...: edgeopt can ..., while {what} needs
    ...`` (:func:`check_capabilities`). ``file``: how a saved model was loaded (the loader's facts, for
    the report), None for a zoo model. ``pretrained``: its loader's fact (:class:`Loader`), set by
    :func:`load_model`: the model comes as the user gave it, with trained weights to keep (the reference
    is measured before any training), rather than built fresh from code, untrained.
    """

    model: Any  # a tf_keras model, or what a graph loader returns (a GraphModel)
    kind: str  # the LOADERS key of the loader that loaded it
    trainable: bool
    wrappable: bool
    graph: bool
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    file: dict | None = field(default=None, compare=False)
    limits: str | None = None
    pretrained: bool = True

    @property
    def has_keras_model(self) -> bool:
        """Whether there is a Keras model to read heads, layers and outputs from (to score its exports by
        their heads, diagnose its layers, repair its int8 export); not for a graph."""
        return not self.graph

    @classmethod
    def of_keras(cls, model, kind: str = "tf_keras", file: dict | None = None) -> LoadedModel:
        """A tf_keras model and what it can do (wrappable: Sequential or functional, not subclassed)."""
        from edgeopt.train import input_names, output_names

        def ports(names: list[str], tensors) -> tuple[Port, ...]:
            names = names if len(names) == len(tensors) else [""] * len(tensors)
            return tuple(Port(n, tuple(t.shape[1:])) for n, t in zip(names, tensors, strict=True))

        return cls(model=model, kind=kind, trainable=True, wrappable=wrappable(model), graph=False,
                   inputs=ports(input_names(model), list(model.inputs or [])),
                   outputs=ports(output_names(model), list(model.outputs or [])), file=file)

    def with_model(self, model) -> LoadedModel:
        """The same capabilities for ``model``, a trained copy of this one."""
        return replace(self, model=model)


@dataclass(frozen=True)
class Loader:
    """One kind of model, an entry of :data:`LOADERS`.

    ``claims(model)``: whether it loads a recipe's ``model:`` (a zoo name, a path); ``load(recipe,
    data)``: the :class:`LoadedModel` and the data matched with its inputs and outputs
    (:meth:`~edgeopt.dataset.Dataset.for_model`), every mismatch refused; ``trainable``,
    ``wrappable``: what the loaded model will say, when known before loading (a search refuses an
    untrainable model up front; a file may hold a subclassed model, known once loaded); ``limits``: why
    not trainable, when not (see :class:`LoadedModel`). ``pretrained``: the model comes as the user gave
    it, with trained weights to keep (True: a saved model), or is built fresh from code, untrained
    (False: a zoo model), which :class:`LoadedModel` repeats; ``task_of(model)``: the task
    (``classification``, ``regression``) of a model it claims when known before loading (a zoo entry
    says it), None when only the data tells.
    """

    kind: str
    claims: Callable[[str], bool]
    load: Callable[[Recipe, Dataset], tuple[LoadedModel, Dataset]]
    trainable: bool = True
    limits: str | None = None
    wrappable: bool = True
    pretrained: bool = True
    task_of: Callable[[str], str | None] = field(default=lambda model: None, compare=False)


def loader_for(model: str) -> Loader | None:
    """The first loader of :data:`LOADERS` that claims ``model`` (None when none does)."""
    return next((loader for loader in LOADERS.values() if loader.claims(model)), None)


def can_train(model: str) -> bool:
    """Whether the model a recipe names can be trained (an unknown model is left to its loading)."""
    loader = loader_for(model)
    return loader is None or loader.trainable


def is_pretrained(model: str) -> bool:
    """Whether the model a recipe names comes as the user gave it, with trained weights to keep, as its
    loader declares (``pretrained``); an unknown model (a missing file) is taken as given, its loading
    says what is wrong."""
    loader = loader_for(model)
    return loader is None or loader.pretrained


def model_task(model: str) -> str | None:
    """The task of the model a recipe names when its loader knows it before loading (``task_of``);
    None when only the data tells."""
    loader = loader_for(model)
    return None if loader is None else loader.task_of(model)


# Why a model cannot be trained, when its loader does not say.
UNTRAINABLE = "cannot be trained by edgeopt, while {what} needs a model it can train"


def training_limits(model: str, what: str) -> str | None:
    """Why ``what`` (a command, a step) cannot be done with the model a recipe names, as its loader
    declares it before loading (``model: ... is ...``); None when it can be trained, or is unknown."""
    if can_train(model):
        return None
    return f"model: {model} {(loader_for(model).limits or UNTRAINABLE).format(what=what)}"


def load_model(recipe: Recipe, data: Dataset) -> tuple[LoadedModel, Dataset]:
    """The recipe's model, loaded by the loader of :data:`LOADERS` that claims it, and the data
    matched with the model's input and output names in the model's order
    (:meth:`~edgeopt.dataset.Dataset.for_model`)."""
    loader = loader_for(recipe.model)
    if loader is None:
        raise InputError(
            f"model: '{recipe.model}' is neither a zoo model ({', '.join(ZOO)}) nor an existing file"
        )
    loaded, data = loader.load(recipe, data)
    return replace(loaded, pretrained=loader.pretrained), data


# Why a stage that wraps the layers cannot run on a model that is not wrappable, and the fix.
UNWRAPPABLE = ("is a subclassed Keras model ({model_class}, with its own call): TFMOT wraps, and edgeopt "
               "reads, the layers of a Sequential or Functional model only, so {what} needs it rebuilt as "
               "one (keras.Model(inputs, outputs) or keras.Sequential)")


def check_capabilities(recipe: Recipe, loaded: LoadedModel | Loader) -> None:
    """Refuse, before any training, what the model cannot do, one line naming the step and the fix:
    training, and each stage whose technique trains
    (:meth:`~edgeopt.techniques.base.Technique.needs_training`), when it is not trainable (its
    ``limits`` say why); each stage whose technique wraps or reads the layers
    (:meth:`~edgeopt.techniques.base.Technique.needs_wrapping`) when it is not wrappable."""
    why = f"{recipe.model} {loaded.limits or UNTRAINABLE}"
    if not loaded.trainable and recipe.train.epochs:
        raise InputError(f"train.epochs: {why.format(what='training')}")
    for index, stage in enumerate(recipe.stages):
        technique = TECHNIQUES[stage.kind]
        what = stage.kind + (f" mode {stage.mode}" if "mode" in type(stage).model_fields else "")
        if not loaded.trainable and technique.needs_training(stage):
            raise InputError(f"stages[{index}] {stage.kind}: {why.format(what=what)}")
        if not loaded.wrappable and technique.needs_wrapping(stage):
            model_class = type(loaded.model).__name__ if isinstance(loaded, LoadedModel) else loaded.kind
            raise InputError(f"stages[{index}] {stage.kind}: {recipe.model} "
                             f"{UNWRAPPABLE.format(model_class=model_class, what=what)}")


# -- the loaders -----------------------------------------------------------------------------------


def _load_zoo(recipe: Recipe, data: Dataset) -> tuple[LoadedModel, Dataset]:
    data = data.for_model([], [], f"model {recipe.model} (a zoo model)")
    options = dict(recipe.model_options)
    options.setdefault("dropout", recipe.train.dropout)
    model = build(recipe.model, data.input_shape, data.output_dim, **options)
    return LoadedModel.of_keras(model, "zoo"), data


def _saved(recipe: Recipe) -> Path:
    """A saved model's path; train.dropout (a zoo model's option) refused."""
    if recipe.train.dropout:
        raise InputError("train.dropout applies to zoo models only; set it to 0 for a saved model")
    return Path(recipe.model)


GRAPH_LIMITS = ("is a SavedModel without Keras metadata (Keras 3 model.export, tf.saved_model.save): edgeopt "
                "can convert it and quantize it after training (quantize mode: ptq), while {what} needs the "
                "Keras model itself (save it with model.save('model.keras'))")


def _load_graph(recipe: Recipe, data: Dataset) -> tuple[LoadedModel, Dataset]:
    path = _saved(recipe)
    check_capabilities(recipe, LOADERS["savedmodel"])
    graph = load_graph_model(path)
    data = data.for_model([graph.input_name], [graph.output_name], f"model: {path}")
    _check_graph_fits(graph, data)
    return LoadedModel(graph, "savedmodel", trainable=False, wrappable=False, graph=True,
                       inputs=(Port(graph.input_name, graph.input_shape),),
                       outputs=(Port(graph.output_name, graph.output_shape),), file=graph.facts(),
                       limits=GRAPH_LIMITS), data


def _keras_file_loader(kind: str, load_file: Callable[..., ModelFile]):
    """``load`` for a saved Keras model: a Keras 3 rebuild is verified on the user's own training inputs."""
    def load(recipe: Recipe, data: Dataset) -> tuple[LoadedModel, Dataset]:
        from edgeopt.train import input_names, keras_inputs, output_names

        path = _saved(recipe)
        where = f"model: {path}"

        def samples(model):
            """The user's training inputs, picked by the model's input names (a mismatch is refused)."""
            fitted = data.for_model(input_names(model), output_names(model), where)
            if fitted.named_inputs:  # one input: the Keras 3 loader checks its shape itself
                _check_input_shapes(model, fitted, where)
            return keras_inputs(fitted.representative(count=VERIFY_SAMPLES, seed=recipe.seed))

        saved = load_file(path, trust=recipe.trust_model, where="model", samples=samples)
        loaded = LoadedModel.of_keras(saved.model, kind, saved.facts())
        check_capabilities(recipe, loaded)  # a subclassed model with a stage that wraps: refused here
        model = loaded.model
        fitted = data.for_model(input_names(model), output_names(model), where)
        _check_input_shapes(model, fitted, where)
        return loaded, fitted

    return load


def _is_file(model: str) -> bool:
    return model not in ZOO and Path(model).exists()


# The one registry of model loaders: kind -> Loader, asked in this order (the first that claims the
# recipe's model loads it; tf_keras takes any other existing path, and its checks say what is wrong).
# A new kind of model is one loader (one function and a Loader) and one line here.
LOADERS: dict[str, Loader] = {
    "zoo": Loader("zoo", claims=lambda model: model in ZOO, load=_load_zoo, pretrained=False,
                  task_of=lambda model: ZOO[model].task),
    "savedmodel": Loader("savedmodel", load=_load_graph, trainable=False, limits=GRAPH_LIMITS,
                         claims=lambda model: _is_file(model) and is_graph_savedmodel(Path(model)),
                         wrappable=False, pretrained=True),
    "keras3": Loader("keras3", claims=lambda model: _is_file(model) and is_keras3_file(Path(model)),
                     load=_keras_file_loader("keras3", load_keras3_file), pretrained=True),
    "tf_keras": Loader("tf_keras", claims=_is_file, load=_keras_file_loader("tf_keras", load_tf_keras_file),
                       pretrained=True),
}


def _check_input_shapes(model, data: Dataset, where: str) -> None:
    """Refuse data whose samples do not have the shape of the model's input(s), and a model whose inputs
    are not known (a subclassed model is only built by its first call)."""
    if not model.inputs:
        raise InputError(f"{where} ({type(model).__name__}) is a subclassed Keras model whose inputs are not "
                         "known before it is called, and edgeopt matches the data to the model's inputs "
                         "and converts it from them: rebuild it as a Sequential or Functional model "
                         "(keras.Model(inputs, outputs) or keras.Sequential)")
    if not data.named_inputs:
        expected = tuple(int(d) for d in model.input_shape[1:] if d is not None)
        if tuple(model.input_shape[1:]) != data.input_shape:
            raise InputError(f"{where} takes inputs of shape {expected} but data '{data.name}' has "
                             f"{data.input_shape}")
        return
    for name, tensor in zip(data.input_names, model.inputs, strict=True):
        wanted, given = tuple(tensor.shape[1:]), data.input_shapes[name]
        if not shape_fits(wanted, given):
            raise InputError(f"{where} takes input '{name}' of shape {wanted} but data '{data.name}' has "
                             f"samples of shape {given} for it")


def _check_graph_fits(graph, data: Dataset) -> None:
    """Refuse data a SavedModel graph cannot take, or whose labels its outputs cannot score."""
    wanted, given = graph.input_shape, tuple(data.input_shape)
    if not shape_fits(wanted, given):
        raise InputError(f"model: {graph.path} takes inputs of shape {wanted} but data '{data.name}' has "
                         f"{given}")
    if None in graph.output_shape:
        return
    units, needed = int(np.prod(graph.output_shape)), data.output_dim
    # a classifier needs a unit per class, or one unit (a binary head) for two classes
    classifier_fits = units >= needed or (units == 1 and needed <= 2)
    if not (classifier_fits if data.task == "classification" else units == needed):
        raise InputError(f"model: {graph.path} has {units} output unit(s) but data '{data.name}' needs "
                         f"{needed} ({data.task}); is this the model for this data?")


def model_files(recipe: Recipe) -> list[tuple[str, str]]:
    """(field path, file) for every saved model the recipe names: its model and distillation teachers
    (each name whose loader does not build it from code, :func:`is_pretrained`)."""
    named = [("model", recipe.model)]
    named += [(f"stages[{i}].{field}", path) for i, s in enumerate(recipe.stages)
              for field, path in TECHNIQUES[s.kind].model_files(s)]
    return [(where, path) for where, path in named if is_pretrained(path)]


def recipe_inputs(recipe: Recipe) -> list[str]:
    """Files and folders the recipe reads: an output folder must not hold (and so delete) them."""
    paths = [path for _, path in model_files(recipe)]
    if isinstance(recipe.data, str):
        return paths + ([recipe.data] if recipe.data not in BUILTIN else [])
    return paths + [path for path in (recipe.data.path, recipe.data.test) if path]


def check_model_files(recipe: Recipe) -> None:
    """Refuse, before any work, a model or teacher file that would run code without --trust-model;
    import the recipe's ``custom_objects`` modules (trusted only) so that its files load."""
    use_custom_objects(recipe.custom_objects, recipe.trust_model)
    for where, path in model_files(recipe):
        if Path(path).exists():
            check_no_code(Path(path), recipe.trust_model, where)
