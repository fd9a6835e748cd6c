"""Presets: recipe files shipped with edgeopt, for compressing a model without writing a recipe.

Each ``<name>.yaml`` here is an ordinary recipe without ``model`` and ``data``; :func:`preset_recipe`
fills those in (``edgeopt compress --model m.keras --data images/ --preset NAME``), applies the
``--set`` overrides and validates the result like any recipe, so ``--dump-recipe`` and the
``recipe.resolved.yaml`` written next to the outputs reproduce the run. The presets set
``train.epochs: 0``: a saved model is compressed as it is, never retrained first. A model built
from code (a zoo model name: its loader says it is not ``pretrained``) has no trained weights to
keep, so for it the preset's ``train`` section is dropped and the model is trained with the recipe
defaults. Listing the presets reads this folder only.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from edgeopt.documents import check_depth, load_yaml, read_text
from edgeopt.errors import RecipeError
from edgeopt.loading import is_pretrained
from edgeopt.recipe import Changes, RecipeChange, apply_overrides, parse_recipe

FOLDER = Path(__file__).parent
SUFFIX = ".yaml"


def names() -> list[str]:
    """The preset names, sorted: the file names here without ``.yaml``."""
    return sorted(p.name.removesuffix(SUFFIX) for p in FOLDER.glob(f"*{SUFFIX}"))


def path_of(name: str) -> Path:
    """The preset's recipe file.

    Raises:
        RecipeError: no such preset (with the closest name, or the list).
    """
    if name not in names():
        close = difflib.get_close_matches(name, names(), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"presets: {', '.join(names())}"
        raise RecipeError(f"preset '{name}' does not exist; {hint}")
    return FOLDER / f"{name}{SUFFIX}"


def preset_data(name: str, model: str, data: Any) -> dict[str, Any]:
    """The preset's recipe as plain data with ``model`` and ``data`` filled in (nothing validated yet)."""
    path = path_of(name)
    recipe = load_yaml(read_text(path, RecipeError), str(path), RecipeError) or {}
    if not is_pretrained(model):  # built from code, nothing trained to keep: train it first (recipe defaults)
        recipe.pop("train", None)
    return {"model": model, "data": data, **recipe}


def preset_recipe(name: str, model: str, data: Any, overrides: Changes = None):
    """A validated :class:`~edgeopt.recipe.Recipe`: the preset, ``model`` and ``data``, then ``overrides``.

    Args:
        name: a preset (:func:`names`).
        model: a saved Keras model (.keras, .h5, SavedModel folder) or a zoo model name.
        data: a built-in dataset name, a path (.npz, .csv, folder of class folders) or a ``data:``
            mapping with options.
        overrides: ``KEY=VALUE`` strings, as ``--set`` takes them, or typed changes
            (:data:`edgeopt.recipe.Changes`).

    Raises:
        RecipeError: unknown preset, or the result does not validate (naming the field).
    """
    source = f"preset {name}"
    recipe = apply_overrides(preset_data(name, model, data), overrides)
    check_depth(recipe, source, RecipeError)
    return parse_recipe(recipe, source)


def model_and_data(model: str | None = None, data: Any = None) -> list[RecipeChange]:
    """Recipe changes that replace a recipe's ``model`` and ``data`` with these (None: kept).

    The values are used as given, never read as text: a path is never taken for a number, and a
    mapping stays one.
    """
    return [RecipeChange(key, value) for key, value in (("model", model), ("data", data))
            if value is not None]
