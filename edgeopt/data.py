"""Intake's front: the choice of the source that reads a recipe's ``data:``, and the dataset it gives.

Every dataset is a :class:`~edgeopt.dataset.Dataset` with float32 inputs and a fixed train/test split,
so figures are comparable across runs and releases. :func:`load_dataset` reads a built-in name
(``digits``, ``digits32``, ``facepose``: no network), or the user's data (an ``.npz`` or ``.csv`` file,
an image folder, a loader), through the one registry of data sources, :data:`SOURCES` (kind ->
:class:`~edgeopt.sources.Source`), which lives in :mod:`edgeopt.sources` with the sources themselves
and the ``data:`` mapping whose ``format`` it names. Intake sets on the dataset the facts its source
declares (:attr:`~edgeopt.dataset.Dataset.source`, a :class:`~edgeopt.dataset.SourceFacts`), which the
code using the data asks instead of testing the source's name. The dataset type and the checks of its
arrays live in :mod:`edgeopt.dataset`, below both; this module re-exports them and the built-in
datasets (see ``__all__``).

This module imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeopt.dataset import (
    BINARY,
    CLASSIFICATION,
    MAX_CLASSES,
    MAX_NPZ_ARRAY_BYTES,
    MULTI_OUTPUT,
    NUMERIC_KINDS,
    REGRESSION,
    Arrays,
    Dataset,
    SourceFacts,
    binary_labels,
    check_dataset_arrays,
    check_named_arrays,
    check_outputs,
    n_samples,
    names_of,
    shape_fits,
    take,
)
from edgeopt.errors import InputError
from edgeopt.paths import check_path
from edgeopt.sources import (
    BUILTIN,
    BUILTIN_SOURCE,
    DIGIT_CLASSES,
    DIGITS32_SIZE,
    FACEPOSE_N_TEST,
    FACEPOSE_N_TRAIN,
    FACEPOSE_NOISE_STD,
    FACEPOSE_PITCH_RANGE,
    FACEPOSE_SIZE,
    FACEPOSE_YAW_RANGE,
    FALLBACK,
    NAME_SEPARATOR,
    NPZ_KEYS,
    SOURCES,
    DataSpec,
    Source,
    group_named,
    load_digits,
    load_digits32,
    load_facepose,
    load_npz,
    make_facepose,
    upsample_bilinear,
)
from edgeopt.trainspec import steps_per_epoch

# Re-exported from edgeopt.dataset, edgeopt.sources and edgeopt.trainspec, where they live, for the
# code that reads datasets from here; the rest is this module's own.
__all__ = ["BINARY", "CLASSIFICATION", "MAX_CLASSES", "MAX_NPZ_ARRAY_BYTES", "MULTI_OUTPUT", "NUMERIC_KINDS",
           "REGRESSION", "Arrays", "Dataset", "SourceFacts", "binary_labels", "check_dataset_arrays",
           "check_named_arrays", "check_outputs", "n_samples", "names_of", "shape_fits", "take",
           "NAME_SEPARATOR", "NPZ_KEYS", "DataSpec", "Source", "group_named", "load_npz", "steps_per_epoch",
           "FACEPOSE_YAW_RANGE", "FACEPOSE_PITCH_RANGE", "FACEPOSE_SIZE", "FACEPOSE_N_TRAIN",
           "FACEPOSE_N_TEST", "FACEPOSE_NOISE_STD", "load_digits", "DIGIT_CLASSES", "DIGITS32_SIZE",
           "upsample_bilinear", "load_digits32", "make_facepose", "load_facepose", "BUILTIN",
           "BUILTIN_SOURCE", "SOURCES", "FALLBACK", "source_for", "load_dataset", "load_source", "read"]


def source_for(given) -> Source | None:
    """The source that reads ``given`` (a name or a :class:`DataSpec`): the first in :data:`SOURCES`
    that claims it, else the fallback for an existing path; None when nothing reads it."""
    claiming = next((source for source in SOURCES.values() if source.claims(given)), None)
    if claiming is None and isinstance(given, DataSpec) and given.path and Path(given.path).exists():
        return SOURCES[FALLBACK]
    return claiming


def load_source(spec: DataSpec) -> Dataset:
    """The dataset a ``data:`` mapping describes (a loader, or a path with options)."""
    source = source_for(spec)
    if source is None:
        raise InputError(f"data.path: {spec.path} not found; give an .npz file, a folder of class folders "
                         "or a .csv file")
    return read(source, spec)


def read(source: Source, given: Any) -> Dataset:
    """What ``source`` reads of ``given``, carrying the facts the source declares."""
    return replace(source.load(given), source=source.facts)


def load_dataset(spec) -> Dataset:
    """A built-in dataset by name, user data by path (.npz, folder of class folders, .csv), or a
    :class:`~edgeopt.sources.DataSpec` mapping (options, or a loader): read by the source of
    :data:`SOURCES` that claims it, into one :class:`~edgeopt.dataset.Dataset`."""
    if isinstance(spec, DataSpec):
        return load_source(spec)
    named = source_for(spec)  # a name a source knows: a built-in set (or a registered source's)
    if named is not None:
        return read(named, spec)
    path = check_path(spec, "data")
    if path.exists() or any(path.suffix.lower() in source.suffixes for source in SOURCES.values()):
        if not path.exists():
            raise InputError(f"data: {path} not found (give a built-in name: {', '.join(BUILTIN)}, an .npz "
                             "or .csv file, or a folder of class folders)")
        return load_source(DataSpec(path=str(path)))
    raise InputError(f"data: unknown dataset '{spec}' (built-in: {', '.join(BUILTIN)}; or a path to an .npz "
                     "or .csv file, or to a folder of class folders)")
