"""One trial, as a worker runs it: a compress of the shared trained base with the trial's stages.

The base (the trained model, its reference measurements and the data) is made once per study by
:func:`edgeopt.prepare` and travels to the workers as a :class:`Base`: plain bytes and JSON that
pickle (a process pool) and go through Ray's object store. A worker turns it back into a
:class:`edgeopt.pipeline.Prepared` once and keeps it for every trial it runs, so no trial retrains.
The saved base is a cache: :meth:`Base.read` checks it (JSON, zip checksums, the TFLite identifier)
and raises :class:`Damaged` for an entry that cannot be used, which the driver then recomputes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.data import load_dataset
from edgeopt.errors import EdgeoptError, InputError
from edgeopt.loading import model_task
from edgeopt.modelfile import check_no_code, use_custom_objects
from edgeopt.pipeline import Prepared, compress, gzip_size, prepare
from edgeopt.progress import Progress
from edgeopt.recipe import dump_recipe, parse_recipe
from edgeopt.tune.budgets import Goal
from edgeopt.tune.pruning import TrialPruned, curve_metric, epoch_callback
from edgeopt.types import Variant

BASE_FILES = ("model.keras", "trained_float32.tflite", "base.json")
TFLITE_ID = b"TFL3"  # a .tflite flatbuffer's file identifier, at bytes 4-8


class Damaged(ValueError):
    """A cache entry (a saved base, a trial's result) that exists but cannot be used: recomputed."""


@dataclass
class Base:
    """What every trial of a study shares: the prepared model and reference, as plain data."""

    key: str
    recipe: dict[str, Any]  # the plain resolved recipe the base was prepared from
    keras_file: bytes = field(repr=False)
    reference_file: bytes = field(repr=False)
    facts: dict[str, Any] = field(default_factory=dict)  # keras_variant, reference, history, model_file
    data: Any = field(default=None, repr=False)  # the Dataset (loaded again when absent)

    @classmethod
    def of(cls, prepared, key: str) -> Base:
        return cls(
            key=key,
            recipe=prepared.recipe.resolved(),
            keras_file=prepared.keras_file,
            reference_file=prepared.reference_file,
            data=prepared.data,
            facts={
                "keras_variant": prepared.keras_variant.to_json(),
                "reference": prepared.reference.to_json(),
                "history": prepared.history,
                "model_file": prepared.model_file,
            },
        )

    def without_data(self) -> Base:
        """This base without its dataset (what a worker sends back: the driver saves files only)."""
        return Base(self.key, self.recipe, self.keras_file, self.reference_file, self.facts)

    def write_into(self, folder: Path) -> None:
        (folder / "model.keras").write_bytes(self.keras_file)
        (folder / "trained_float32.tflite").write_bytes(self.reference_file)
        (folder / "base.json").write_text(
            json.dumps({"key": self.key, "recipe": self.recipe, **self.facts}, indent=1)
        )

    @classmethod
    def read(cls, folder: Path) -> Base | None:
        """The base saved in ``folder``, or None when there is none.

        Raises:
            Damaged: the folder exists but a file is missing, truncated or not what it should be.
        """
        if not folder.exists():
            return None
        for name in BASE_FILES:
            if not (folder / name).is_file():
                raise Damaged(f"{name} is missing")
        try:
            facts = json.loads((folder / "base.json").read_bytes())
        except (ValueError, RecursionError):
            raise Damaged("base.json is not valid JSON") from None
        if not isinstance(facts, dict) or facts.get("key") != folder.name:
            raise Damaged("base.json does not describe this base")
        try:
            if not isinstance(facts["recipe"], dict):
                raise TypeError("its recipe is not an object")
            for name in ("keras_variant", "reference"):
                Variant.from_json(facts[name])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise Damaged(f"base.json is incomplete ({type(exc).__name__}: {exc})") from None
        keras_file = (folder / "model.keras").read_bytes()
        reference_file = (folder / "trained_float32.tflite").read_bytes()
        if reference_file[4:8] != TFLITE_ID:
            raise Damaged("trained_float32.tflite is not a TFLite model")
        _check_zip(keras_file, "model.keras")
        key, recipe = facts.pop("key"), facts.pop("recipe")
        return cls(key=key, recipe=recipe, keras_file=keras_file, reference_file=reference_file, facts=facts)

    def prepared(self):
        """This base as a :class:`Prepared` (loads the model; the data when not carried along)."""
        from edgeopt.kerasapi import keras

        recipe = parse_recipe(self.recipe, "study base")
        use_custom_objects(recipe.custom_objects, recipe.trust_model)  # a worker process imports them too
        data = self.data if self.data is not None else load_dataset(recipe.data)
        with tempfile.TemporaryDirectory(prefix="edgeopt-base-") as scratch:
            path = Path(scratch) / "model.keras"
            path.write_bytes(self.keras_file)
            # The study folder is a file like any other: the same rule as for the original model (no
            # Lambda, bytecode or unregistered module without trust), before Keras reads it.
            check_no_code(path, recipe.trust_model, "study base")
            model = keras.models.load_model(path, compile=False, safe_mode=not recipe.trust_model)
        return Prepared(
            recipe=recipe,
            data=data,
            model=model,
            history=self.facts.get("history", {}),
            keras_file=self.keras_file,
            reference_file=self.reference_file,
            keras_variant=Variant.from_json(self.facts["keras_variant"]),
            reference=Variant.from_json(self.facts["reference"]),
            model_file=self.facts.get("model_file"),
        )


def _check_zip(content: bytes, name: str) -> None:
    """A .keras file is a zip archive: every member must be there and match its checksum."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError):
        raise Damaged(f"{name} is not a complete zip archive ({len(content)} bytes)") from None
    if bad is not None:
        raise Damaged(f"{name}: its member {bad} fails its checksum")


@dataclass(frozen=True)
class Job:
    """A trial to run: its number, the stages and export format it compresses with, its cache key,
    and the trained base it starts from (``base_key``). When that base is not trained yet (a study
    searching training settings), ``train`` holds the plain recipe to train it from, and
    ``pruning`` what the pruner needs to stop the training early."""

    number: int
    key: str
    stages: list[dict[str, Any]]
    export: str
    early_stop: Goal | None = None  # its size budgets stop the benchmark of a trial that misses them
    base_key: str = ""
    train: dict[str, Any] | None = None
    pruning: Any = None  # a pruning.Snapshot


def cache_key(base_key: str, stages: list[dict], export: str, early: list[str]) -> str:
    text = json.dumps(
        {"base": base_key, "stages": stages, "export": export, "early": sorted(early)}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_PREPARED: dict[str, Any] = {}  # per worker process: base key -> Prepared (the latest few)
_KEEP = 3  # prepared bases a worker keeps: trials with the same training settings reuse theirs


def _threads(threads: int | None) -> None:
    if threads:
        from edgeopt.kerasapi import tf

        try:  # one trial per reserved CPU: TensorFlow must not take every core of the machine
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised in this process
            pass


def _keep(key: str, prepared) -> None:
    _PREPARED.pop(key, None)
    _PREPARED[key] = prepared
    while len(_PREPARED) > _KEEP:
        _PREPARED.pop(next(iter(_PREPARED)))


def load_base(base: Base | None, threads: int | None = None) -> None:
    """Make ``base`` one of this process's prepared models (a pool worker's initializer)."""
    _threads(threads)
    if base is None or base.key in _PREPARED:
        return
    try:
        _keep(base.key, base.prepared())
    except EdgeoptError:
        raise
    except Exception as exc:  # a base that passed its checks but that Keras cannot load
        raise InputError(
            f"the study's trained base {base.key} cannot be loaded ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); remove the folder base/{base.key} from the study "
            "to train it again"
        ) from None


def _train(job: Job) -> tuple[Any, dict[str, Any]]:
    """Train the job's base (its own training settings); return it and what the trial learned:
    ``curve`` (lower is better, one point an epoch), ``curve_metric``, ``attrs`` (the pruner's),
    and ``pruned_at`` (the last epoch trained, 0-based) when the pruner stopped it.

    Raises:
        EdgeoptError: the training refused or diverged, as in compress.
    """
    recipe = parse_recipe(job.train, f"trial {job.number}")
    task = model_task(recipe.model)  # a zoo model's task, known before loading
    if task is None:
        task = load_dataset(recipe.data).task
    metric = curve_metric(task, recipe.train.validation_split > 0)
    callback = epoch_callback(job.pruning, job.number, metric)
    learned: dict[str, Any] = {"curve_metric": metric}
    try:
        with Progress(quiet=True) as quiet:
            # checked=True: only training settings differ from the base recipe tune checked at setup
            prepared = prepare(recipe, quiet, callbacks=(callback,), checked=True)
    except TrialPruned as stop:
        return None, learned | {"curve": callback.curve, "attrs": callback.attrs, "pruned_at": stop.epoch}
    return prepared, learned | {"curve": callback.curve, "attrs": callback.attrs}


def run(job: Job, base: Base | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run one trial (training its base first when the job says so); return its report, files and
    resolved recipe, the base it trained and its curve, or its one-line error, or that it was pruned."""
    start = time.perf_counter()
    load_base(base, threads)
    trained: dict[str, Any] = {}
    prepared = _PREPARED.get(job.base_key) if job.base_key else next(iter(_PREPARED.values()), None)
    if prepared is None and job.train is not None:
        try:
            prepared, trained = _train(job)
        except EdgeoptError as exc:
            return {"number": job.number, "key": job.key, "error": str(exc),
                    "seconds": time.perf_counter() - start}
        except Exception as exc:  # a crash inside TensorFlow: this trial fails, the study goes on
            return {"number": job.number, "key": job.key,
                    "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
                    "seconds": time.perf_counter() - start}
        if prepared is None:
            return {"number": job.number, "key": job.key, "pruned": True, **trained,
                    "seconds": time.perf_counter() - start}
        _keep(job.base_key, prepared)
        trained["base"] = Base.of(prepared, job.base_key).without_data()
    if prepared is None:
        raise InputError(f"trial {job.number}: its trained base {job.base_key} is not loaded")
    gate = None
    if job.early_stop is not None:
        goal = job.early_stop

        def gate(fmt: str, raw: bytes) -> str | None:
            return goal.early_stop(gzip_size(raw), len(raw))

    try:
        result = compress(prepared, stages=job.stages, export=[job.export], gate=gate,
                          judge=False)  # the study judges budgets itself, as constraints
    except EdgeoptError as exc:
        return {
            "number": job.number,
            "key": job.key,
            "error": str(exc),
            "seconds": time.perf_counter() - start,
            **trained,
        }
    except Exception as exc:  # a crash inside TensorFlow/TFMOT: this trial fails, the study goes on
        return {
            "number": job.number,
            "key": job.key,
            "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
            "seconds": time.perf_counter() - start,
            **trained,
        }
    return {
        "number": job.number,
        "key": job.key,
        "report": result.report.to_json(),
        "files": result.files,
        "recipe": dump_recipe(result.recipe),
        "seconds": time.perf_counter() - start,
        **trained,
    }
