"""Run a recipe in steps: prepare -> compress -> measure -> write. Sequences the stages, nothing else.

* :func:`prepare`: load the data, build or load the model, train it, and measure its float32
  ``.tflite`` (the reference every ratio is taken against). Done once.
* :func:`compress`: on a copy of the prepared model, for each stage apply, fine-tune with its
  callbacks, strip and report; convert to each export format; :func:`measure` each ``.tflite``
  (inspect, evaluate, benchmark); verify. Any number of times on one :class:`Prepared`.
* :meth:`Result.save` / :func:`run_recipe`: write the files, the resolved recipe and the report,
  staged beside the output folder and moved into place only when complete, so an interrupted or
  failed run never leaves partial files, and an existing output is replaced only with
  ``overwrite`` (and only at the very end).
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeopt import bench, environment, repair
from edgeopt.bench import parse_target
from edgeopt.data import Dataset, load_dataset
from edgeopt.errors import EdgeoptError, EnvironmentProblem, InputError
from edgeopt.evaluate import below_chance, evaluate_tflite, first_layer_fact, keras_metrics, output_heads
from edgeopt.formats import FORMATS, QAT_FORMATS
from edgeopt.inspect import inspection
from edgeopt.loading import (
    LoadedModel,
    check_capabilities,
    check_model_files,
    is_pretrained,
    load_model,
    recipe_inputs,
)
from edgeopt.logs import NOT_CAPTURING, Capture
from edgeopt.outputs import check_output, staged_output
from edgeopt.progress import Progress
from edgeopt.recipe import Changes, Recipe, RecipeChange, change_recipe, dump_recipe, recipe_changes
from edgeopt.regress import judge_budgets
from edgeopt.report import render_markdown, render_table, write_report
from edgeopt.stages import run_stages
from edgeopt.techniques import TECHNIQUES
from edgeopt.techniques.quantize import float_first_int8
from edgeopt.types import (
    KERAS_VARIANT,
    ORIGINAL,
    REFERENCE,
    TASK_METRIC,
    Format,
    LatencyKey,
    Metric,
    Report,
    Status,
    Task,
    Variant,
)
from edgeopt.verify import run_checks
from edgeopt.version import __version__

QUANTIZED_FORMATS = QAT_FORMATS  # formats exported from the QAT model when the recipe has one
LABELS_FILE = "labels.txt"  # a classifier's class names, one a line in its outputs' order, beside the files


# -- small helpers ---------------------------------------------------------------------------------


def gzip_size(raw: bytes) -> int:
    """Size after gzip -9, the figure budgets and reports use for a compressed download."""
    return len(gzip.compress(raw, compresslevel=9, mtime=0))


def seed_everything(seed: int) -> None:
    from edgeopt.kerasapi import keras, tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# -- variants --------------------------------------------------------------------------------------


def measure(name: str, fmt: str, path: Path, data: Dataset, recipe: Recipe, progress: Progress,
            skip_benchmark: str | None = None, heads: dict[str, str] | None = None) -> Variant:
    """Inspect, evaluate and benchmark (every target x thread count) one emitted ``.tflite``;
    with ``skip_benchmark`` (a reason) every latency entry is a failed row giving that reason.
    ``heads``: the activation of each named output of the model it was converted from."""
    patterns = [TECHNIQUES[s.kind].inspect_pattern(s) for s in recipe.stages]
    raw = path.read_bytes()
    # gzip -9 is slow on long runs of zeros (0.15 s for a 340 KB pruned file); zlib lets go of the GIL,
    # so it runs on the other core while the file is inspected and scored, never beside a timing.
    with ThreadPoolExecutor(max_workers=1) as background:
        packed = background.submit(gzip_size, raw)
        info = inspection(path, pattern=next((p for p in patterns if p), (2, 4)))
        metrics, evaluation = evaluate_tflite(path, data, heads=heads, info=info)
        gzip_bytes = packed.result()
    latency = {}
    spec = recipe.benchmark
    for target in spec.targets:
        for threads in spec.threads:
            key = LatencyKey.of(target, threads, spec.threads[0])  # report.json: str(key)
            if skip_benchmark:
                latency[key] = bench.failed(skip_benchmark, bench.parse_target(target), spec, threads)
                continue
            progress(f"benchmarking {path.name} on {target} ({threads} thread(s))")
            try:
                latency[key] = bench.measure(path, target, spec, threads=threads)
            except EnvironmentProblem as exc:  # an unreachable board is a failed row, not a dead run
                latency[key] = bench.failed(str(exc), bench.parse_target(target), spec, threads)
    return Variant(
        name=name, format=fmt, path=path.name, status=Status.OK, reason=None, size_bytes=len(raw),
        gzip_bytes=gzip_bytes, params=info.params, sparsity=info.sparsity,
        metrics={k: Metric.from_json(m) for k, m in metrics.items()}, latency=latency, inspect=info,
        evaluation=evaluation,
    )


# -- the run ---------------------------------------------------------------------------------------


def sparse_encoding(recipe: Recipe) -> bool:
    """Export with TFLite's sparse encoding: as asked, else when a prune stage targets XNNPACK sparse."""
    if recipe.export_options.sparse_encoding is not None:
        return recipe.export_options.sparse_encoding
    return any(TECHNIQUES[s.kind].sparse_encoding(s) for s in recipe.stages)


@dataclass
class Prepared:
    """What every compression of a recipe shares: its data, the trained model and its reference.

    Made once by :func:`prepare`; :func:`compress` may run on it any number of times (a search
    does) without retraining or re-measuring the reference. ``model`` is never modified:
    each compress works on a copy. ``loaded`` says what the model can do
    (:class:`~edgeopt.loading.LoadedModel`); given none, ``model`` is a tf_keras model (a study's base).
    """

    recipe: Recipe
    data: Dataset
    model: Any  # the trained model; used as loaded when it is not trainable (``loaded.trainable``)
    history: dict[str, list]
    keras_file: bytes | None  # model.keras as saved after training (None: not trainable, never trained)
    reference_file: bytes  # trained_float32.tflite, or original.tflite for the user's saved model
    keras_variant: Variant | None  # None when not trainable: there is no trained model.keras
    reference: Variant  # trained_float32 (or original), inspected, evaluated and benchmarked
    model_file: dict | None = None  # how a saved model was loaded (Keras 3: rebuilt, max_abs_diff)
    loaded: LoadedModel | None = None

    def __post_init__(self) -> None:
        if self.loaded is None:
            self.loaded = LoadedModel.of_keras(self.model, file=self.model_file)


@dataclass(frozen=True)
class Result:
    """One compression: the typed report and the files it describes, not yet on disk."""

    report: Report
    recipe: Recipe
    files: dict[str, bytes] = field(repr=False)  # file name -> content: model.keras and each .tflite

    @property
    def ok(self) -> bool:
        return self.report.ok

    def table(self) -> str:
        """The report as a terminal table."""
        return render_table(self.report)

    def _repr_markdown_(self) -> str:  # a notebook shows the Markdown report
        return render_markdown(self.report)

    def write_into(self, folder: Path, log: Capture = NOT_CAPTURING) -> None:
        """Write every file, the resolved recipe, the log and the report into an existing ``folder``."""
        for name, content in self.files.items():
            (folder / name).write_bytes(content)
        (folder / "recipe.resolved.yaml").write_text(dump_recipe(self.recipe))
        log.copy_into(folder)
        write_report(self.report, folder)

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the result into ``folder``, staged and moved into place only when complete."""
        folder = Path(folder)
        check_output(folder, overwrite, recipe_inputs(self.recipe))
        with staged_output(folder, overwrite, inputs=recipe_inputs(self.recipe)) as work:
            self.write_into(work)
        return folder


def check_recipe(recipe: Recipe, data: Dataset | None = None) -> None:
    """Everything that can be refused before any training: targets, model files, prune schedules.
    Run once per run: by :func:`prepare` (or :func:`run_recipe`, before it stages its output), and by
    :func:`compress` only for a recipe it changed."""
    for target in recipe.benchmark.targets:  # a typo in a target fails now, not after training
        parse_target(target)
    check_model_files(recipe)
    if data is not None:
        check_stages(recipe, data)


def check_stages(recipe: Recipe, data: Dataset) -> None:
    """Refuse a stage that cannot work on ``data``, before any training."""
    for index, stage in enumerate(recipe.stages):
        TECHNIQUES[stage.kind].validate(stage, index, data, recipe.train)


def prepare(recipe: Recipe, progress: Progress | None = None, callbacks: tuple = (), *,
            checked: bool = False) -> Prepared:
    """Load the data, build (or load) and train the model, and measure its float32 reference.
    ``callbacks`` (tf_keras callbacks) follow the training; tune's pruner is one. ``checked``: the
    caller ran :func:`check_recipe` on ``recipe`` already (a run checks before staging its output,
    tune before its first trial), so it is not run twice."""
    from edgeopt.train import check_model_fits_data, fit, with_regularization

    progress = progress or Progress(quiet=True)
    progress.status(f"loading data {recipe.data if isinstance(recipe.data, str) else recipe.data.name}")
    given = load_dataset(recipe.data)
    if not checked:
        check_recipe(recipe)
    check_stages(recipe, given)
    progress.status(_loading_model(recipe))
    seed_everything(recipe.seed)
    loaded, data = load_model(recipe, given)
    check_capabilities(recipe, loaded)  # whatever its loader checked: nothing is trained that fails later
    model, model_file = loaded.model, loaded.file
    if model_file and "max_abs_diff" in model_file:
        on = {"samples": "your data", "synthetic": "random inputs"}.get(model_file.get("verified_on"))
        progress.status(f"rebuilt {recipe.model} in tf_keras" + (
            f", verified on {on}: outputs within {model_file['max_abs_diff']:.2g} of the Keras 3 model's"
            if on else ""))
    if not _same_arrays(given, data):  # a stage may refuse what the model's inputs and outputs make of it
        check_stages(recipe, data)
    if loaded.has_keras_model:  # labels its outputs cannot score are refused before any conversion
        check_model_fits_data(model, data, where="model")
    bench.start(recipe.benchmark)  # the first benchmark's runner loads while the model converts or trains
    if not loaded.trainable:  # used as given: converted, never trained
        with tempfile.TemporaryDirectory(prefix="edgeopt-") as scratch:
            reference_file, reference = _reference(ORIGINAL, loaded, Path(scratch), data, recipe, progress)
        reference = reference.replace(note="your SavedModel as given, converted to float32 unchanged")
        reference = _chance_note(reference, model, data, progress)
        return Prepared(recipe=recipe, data=data, model=model, history={}, keras_file=None,
                        reference_file=reference_file, keras_variant=None, reference=reference,
                        model_file=model_file, loaded=loaded)
    with tempfile.TemporaryDirectory(prefix="edgeopt-") as scratch:
        scratch = Path(scratch)
        original = None
        if loaded.pretrained:  # the user's model as given is the reference, measured before training
            original = _reference(ORIGINAL, loaded, scratch, data, recipe, progress)
        model = with_regularization(model, recipe.train.l1, recipe.train.l2)
        bars = []
        if recipe.train.epochs:  # a saved model used as it is (epochs 0) is not trained: say nothing
            progress(f"training {recipe.run_name} on {data.name} ({recipe.train.epochs} epochs max)")
            bars = [progress.keras_callback(f"training {recipe.run_name}", recipe.train.epochs)]
        history = fit(model, data, recipe.train, seed=recipe.seed, callbacks=[*bars, *callbacks])
        keras_path = scratch / "model.keras"
        model.save(keras_path)
        keras_file = keras_path.read_bytes()
        reference_file, reference = original or _reference(REFERENCE, loaded.with_model(model), scratch, data,
                                                           recipe, progress)
    metrics, evaluation = keras_metrics(model, data)
    keras_variant = Variant(
        name=KERAS_VARIANT, format=Format.KERAS, path="model.keras", size_bytes=len(keras_file),
        gzip_bytes=gzip_size(keras_file), params=int(model.count_params()),
        metrics={k: Metric.from_json(m) for k, m in metrics.items()}, evaluation=evaluation,
    )
    if not loaded.pretrained and recipe.train.epochs == 0:
        # A distill recipe may leave the student to its stage: the references are then untrained.
        note = "untrained: train.epochs is 0; a latency reference, not an accuracy one"
        keras_variant, reference = keras_variant.replace(note=note), reference.replace(note=note)
    elif loaded.pretrained:
        epochs = len(history.get("loss", []))
        note = ("your model as given, converted to float32 unchanged" if not epochs else
                f"your model as given, converted to float32 before edgeopt fine-tuned it for {epochs} epochs")
        reference = _chance_note(reference.replace(note=note), model, data, progress)
    return Prepared(recipe=recipe, data=data, model=model, history=history, keras_file=keras_file,
                    reference_file=reference_file, keras_variant=keras_variant, reference=reference,
                    model_file=model_file, loaded=loaded.with_model(model))


def _same_arrays(given: Dataset, fitted: Dataset) -> bool:
    """``fitted`` (the data matched with the model) holds ``given``'s very arrays: checked once is enough."""
    arrays = ("x_train", "y_train", "x_test", "y_test")
    return all(getattr(given, name) is getattr(fitted, name) for name in arrays)


def heads_of(loaded: LoadedModel, model, data: Dataset) -> dict[str, str] | None:
    """The activation of each named output of ``model`` (``loaded``'s, or a stage's copy of it), for
    scoring its exports; None when there is no Keras model to read them from."""
    return output_heads(model, data) if loaded.has_keras_model else None


def _chance_note(reference: Variant, model, data: Dataset, progress: Progress) -> Variant:
    """The user's model as given, warned about in its note (and a progress line) when it scores at or
    below chance on the data: the class order or the input range is then likely not the model's."""
    accuracy = reference.metrics.get("accuracy")
    warning = below_chance(accuracy.value, data, first_layer=first_layer_fact(model)) if accuracy else None
    if warning is None:
        return reference
    progress(f"warning: {warning}")
    return reference.replace(note=f"{reference.note}; warning: {warning}" if reference.note else warning)


def _loading_model(recipe: Recipe) -> str:
    """The progress line for the first slow step: TensorFlow starting with the model."""
    if not is_pretrained(recipe.model):  # built fresh from code
        return f"building {recipe.model} (starting TensorFlow)"
    return (f"loading {recipe.model} (starting TensorFlow; a Keras 3 file is rebuilt in tf_keras and "
            "verified on your data)")


def _reference(name: str, loaded: LoadedModel, scratch: Path, data: Dataset, recipe: Recipe,
               progress: Progress) -> tuple[bytes, Variant]:
    """``loaded``'s model converted to float32 unchanged, inspected, evaluated and benchmarked: the
    variant every ratio and drop is taken against."""
    from edgeopt.convert import convert

    progress.status(f"converting {name} to float32 and scoring it: the reference")
    path = scratch / f"{name}.tflite"
    path.write_bytes(convert(loaded.model, "float32"))
    return path.read_bytes(), measure(name, "float32", path, data, recipe, progress,
                                      heads=heads_of(loaded, loaded.model, data))


def copy_model(model):
    """A copy of a trained tf_keras model with the same layer names and weights."""
    from edgeopt.kerasapi import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


Gate = Callable[[str, bytes], "str | None"]


def compress(prepared: Prepared, *, stages: list | None = None, export: list[str] | None = None,
             overrides: Changes = None, progress: Progress | None = None,
             gate: Gate | None = None, judge: bool = True) -> Result:
    """Apply the recipe's stages to a copy of the trained model, export, verify and measure.

    ``stages``, ``export`` and ``overrides`` (``KEY=VALUE`` as on the command line, or a mapping of
    field paths to values: ``{"stages[0].target_sparsity": 0.9}``) replace the prepared recipe's, as
    one typed change validated once (:func:`edgeopt.recipe.change_recipe`); the training and the
    reference are reused, never redone. ``gate(format, tflite_bytes)``, called after each
    conversion, may return a reason to skip that export's
    benchmark (a search stops a trial whose size already misses its budget): its latency entries
    are then failed rows giving the reason; it is still inspected and evaluated. With ``judge``, a
    variant that misses one of the recipe's ``budgets`` is failed (:func:`edgeopt.regress.judge_budgets`);
    a search judges its trials against its budgets itself, as constraints, and passes False.
    """
    recipe = _with_changes(prepared.recipe, stages, export, overrides)
    if recipe is not prepared.recipe:  # prepare checked its own recipe: only a changed one is checked again
        check_recipe(recipe, prepared.data)
        check_capabilities(recipe, prepared.loaded)
    progress = progress or Progress(quiet=True)
    with tempfile.TemporaryDirectory(prefix="edgeopt-") as scratch:
        result = _compress(prepared, recipe, Path(scratch), progress, gate)
    if judge:
        result = replace(result, report=judge_budgets(result.report, recipe.budgets))
    return result


def _with_changes(recipe: Recipe, stages, export, overrides: Changes) -> Recipe:
    """``recipe`` with ``stages``, ``export`` and then ``overrides`` applied, validated once
    (:func:`edgeopt.recipe.change_recipe`); the prepared model's own fields may not change."""
    changes = [*([RecipeChange("stages", list(stages))] if stages is not None else []),
               *([RecipeChange("export", list(export))] if export is not None else []),
               *recipe_changes(overrides)]
    changed = change_recipe(recipe, changes, "compress()")
    fixed = ("model", "model_options", "data", "seed", "train", "trust_model", "custom_objects")
    moved = [name for name in fixed if getattr(changed, name) != getattr(recipe, name)]
    if moved:
        raise InputError(f"compress() reuses the prepared model: {', '.join(moved)} cannot change; "
                         "prepare() a new recipe instead")
    return changed


def _compress(prepared: Prepared, recipe: Recipe, scratch: Path, progress: Progress,
              gate: Gate | None = None) -> Result:
    from edgeopt.convert import ConversionError, convert

    data = prepared.data
    seed_everything(recipe.seed)
    loaded = prepared.loaded
    model = copy_model(prepared.model) if loaded.trainable else prepared.model
    representative = data.representative(seed=recipe.seed)
    ran = run_stages(model, recipe.stages, data, recipe.train, seed=recipe.seed,
                     trust_model=recipe.trust_model, progress=progress)
    stages, float_model, current = ran.outcomes, ran.float_model, ran.model

    reference = prepared.reference
    if recipe.benchmark != prepared.recipe.benchmark:  # other targets or threads: measure it on them too
        path = scratch / f"{reference.name}.tflite"
        path.write_bytes(prepared.reference_file)
        measured = measure(reference.name, "float32", path, data, recipe, progress,
                           heads=heads_of(loaded, model, data))
        reference = reference.replace(latency=measured.latency)
    variants = [v for v in (prepared.keras_variant, reference) if v is not None]
    quantization = next((s for s in recipe.stages if s.kind == "quantize"), None)
    files = {"model.keras": prepared.keras_file} if prepared.keras_file is not None else {}
    files[f"{reference.name}.tflite"] = prepared.reference_file
    # Layers QAT kept in float (the standardisation of an input): its int8 file computes them in float.
    qat_float = (next(o for o in stages if o.kind == "quantize").achieved.get("float_layers") or []
                 if quantization is not None and quantization.mode == "qat" else [])
    for fmt in recipe.export:
        source = current if fmt in QUANTIZED_FORMATS else float_model
        path = scratch / FORMATS[fmt].file_name
        progress(f"exporting {fmt}")
        float_first = fmt in QUANTIZED_FORMATS and bool(qat_float)
        try:
            path.write_bytes(
                float_first_int8(source, representative, qat_float, sparse_encoding=sparse_encoding(recipe))
                if float_first else
                convert(source, fmt, representative, int8_io=recipe.export_options.int8_io,
                        sparse_encoding=sparse_encoding(recipe), quantization=quantization))
        except ConversionError as exc:
            variants.append(Variant.failed(fmt, fmt, str(exc)))
            continue
        stopped = gate(fmt, path.read_bytes()) if gate is not None else None
        variant = measure(fmt, fmt, path, data, recipe, progress, skip_benchmark=stopped,
                          heads=heads_of(loaded, source, data))
        if float_first:
            variant = variant.replace(note=f"float input and output: {', '.join(qat_float)} in float, "
                                           "quantization starting after it (quantization-aware training)")
        if repair.needed(quantization, fmt, variant, reference, recipe.budgets, loaded, data):
            variant = _repaired(variant, source, fmt, path, data, recipe, prepared, progress, stopped)
        if loaded.has_keras_model and repair.misses_budget(fmt, variant, reference, recipe.budgets, data):
            variant = _diagnosed(variant, float_model, data, recipe.seed, progress)
        variants.append(variant)
        files[path.name] = path.read_bytes()
    if data.class_names:  # what each output of the .tflite files is, for the code that deploys them
        lines = (" ".join(name.splitlines()) for name in data.class_names)  # one class a line, always
        files[LABELS_FILE] = "".join(f"{line}\n" for line in lines).encode()

    report = Report(
        edgeopt_version=__version__,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        name=recipe.run_name,
        task=data.task,
        recipe=recipe.resolved(),
        seed=recipe.seed,
        environment=environment.describe(),
        data=data.describe(),
        training={"history": prepared.history, "epochs_run": len(prepared.history.get("loss", []))},
        stages=tuple(stages),
        variants=tuple(variants),
        checks=tuple(run_checks(stages, variants, prepared.history)),
        extra={"model_file": prepared.model_file} if prepared.model_file else {},
    )
    return Result(report=report.with_status(), recipe=recipe, files=files)


def _repaired(variant: Variant, model, fmt: str, path: Path, data: Dataset, recipe: Recipe,
              prepared: Prepared, progress: Progress, stopped: str | None) -> Variant:
    """The export after :func:`edgeopt.repair.repair`: the kept attempt's file measured like any export,
    or the variant as calibrated when no attempt met the budget; either way the attempts are recorded."""
    from edgeopt.convert import convert

    name = TASK_METRIC[Task(data.task)]
    ref = prepared.reference.metric(name)
    calibrated = path.read_bytes()  # what ships when no repair is kept

    def accept(raw: bytes) -> bool:  # the report's judge, on the test split
        path.write_bytes(raw)
        metrics, _ = evaluate_tflite(path, data, heads=heads_of(prepared.loaded, model, data))
        value = metrics.get(name, {}).get("value")
        return value is not None and recipe.budgets.allows(ref.value, value, ref.higher_is_better) is True

    fixed = repair.repair(model, fmt, data, recipe.budgets, prepared.reference_file, convert=convert,
                          seed=recipe.seed, int8_io=recipe.export_options.int8_io, accept=accept,
                          progress=progress)
    record = {"repair": fixed.to_json()}
    kept = fixed.kept_attempt
    if fixed.kept is None or kept is None:
        path.write_bytes(calibrated)
        return variant.replace(extra={**variant.extra, **record})
    path.write_bytes(fixed.kept)
    measured = measure(fmt, fmt, path, data, recipe, progress, skip_benchmark=stopped,
                       heads=heads_of(prepared.loaded, model, data))
    share = repair.integer_mac_share(measured.inspect)
    record.update(float_layers=list(kept.float_layers), integer_mac_share=share)
    note = f"repaired ({kept.name}): {kept.detail}" + (
        f"; {share:.0%} of its MACs in integer ops" if share is not None and kept.float_layers else "")
    return measured.replace(extra={**measured.extra, **record}, note=note)


def _diagnosed(variant: Variant, model, data: Dataset, seed: int, progress: Progress) -> Variant:
    """The export over its accuracy budget with ``edgeopt diagnose``'s summary of the float model it
    came from: which layers int8 hurts (report.json ``diagnosis``, a plot in report.html)."""
    progress(f"diagnosing why {variant.name} missed its accuracy budget")
    try:
        summary = repair.diagnosis_summary(model, data, seed)
    except EdgeoptError as exc:  # the diagnosis is an explanation: its failure must not hide the figures
        summary = {"error": str(exc)}
    return variant.replace(extra={**variant.extra, "diagnosis": summary})


def run_recipe(
    recipe: Recipe, out_dir: Path, *, overwrite: bool = False, quiet: bool = False,
    recipe_path: Path | None = None, log: Capture = NOT_CAPTURING,
) -> Result:
    """Run ``recipe`` (prepare, compress, write) into ``out_dir``; return the result.

    ``recipe_path``, the file the recipe came from, is protected like the other inputs: an output
    folder that holds it is refused. ``log``, TensorFlow's captured output, is kept as edgeopt.log.
    """
    out_dir = Path(out_dir)
    inputs = [*recipe_inputs(recipe), recipe_path]
    check_output(out_dir, overwrite, inputs)
    check_recipe(recipe)  # the run's one check: before its output is staged
    # Progress draws bars only on a terminal and not quiet; otherwise one status line per step.
    notices: list[str] = []
    with Progress(quiet) as progress, staged_output(out_dir, overwrite, notices, inputs) as work:
        for notice in notices:
            progress(notice)
        result = compress(prepare(recipe, progress, checked=True), progress=progress)
        result.write_into(work, log)
    return result
