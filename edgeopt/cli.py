"""The edgeopt command line: a thin Click skin over the library.

Each command parses its options, calls the Python API (:mod:`edgeopt.api`, the functions a script
calls), renders the result and exits with a documented code (see :mod:`edgeopt.errors`). Nothing here
imports TensorFlow at module level, so ``edgeopt --help``, ``models``, ``check`` and ``report`` stay fast
and work without it.
"""

from __future__ import annotations

import errno
import gc
import json
import sys
from pathlib import Path

import click

from edgeopt.errors import EXIT_CHECK_FAILED, EdgeoptError
from edgeopt.paths import UserPath, check_path
from edgeopt.presets import names as preset_names
from edgeopt.version import __version__


class EdgeoptGroup(click.Group):
    """Turns library errors into one line on stderr and their exit code; never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's usage errors (three lines by default) become one line, exit 2, like ours."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)

        catch_interrupts()
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            where = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else None
            hint = f" (see '{where} --help')" if where else ""
            click.echo(f"edgeopt: error: {' '.join(exc.format_message().split())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("edgeopt: interrupted; no output was moved into place", err=True)
            sys.exit(130)

        if interrupted() and code != 130:  # a Ctrl-C that a finalizer swallowed, and the command
            # then ended through its own exit code (a check that failed): the interrupt still wins
            click.echo("edgeopt: interrupted; no output was moved into place", err=True)
            sys.exit(130)
        # Everything is written. Tearing down TensorFlow's object graph at exit costs ~1.7 s of
        # collection; frozen objects are left to the operating system instead.
        gc.freeze()
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            if interrupted():
                raise KeyboardInterrupt
            return result
        except EdgeoptError as exc:
            click.echo(f"edgeopt: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgeopt: interrupted; no output was moved into place", err=True)
            ctx.exit(130)
        except OSError as exc:  # a path or a write the library did not expect to fail
            problem = _path_error(exc) or environment_error(exc, exc.filename or "the output")
            if problem is None:
                raise
            click.echo(f"edgeopt: error: {problem}", err=True)
            ctx.exit(problem.exit_code)


def _path_error(exc: OSError) -> EdgeoptError | None:
    """An InputError for a path no system call takes (too long, a symbolic link loop), else None:
    the last resort behind :func:`~edgeopt.paths.check_path`, for a path that reached a call unchecked."""
    reasons = {errno.ENAMETOOLONG: "is too long for the file system; give a shorter path",
               errno.ELOOP: "is a loop of symbolic links; point the link at a real file or give another path"}
    if exc.errno not in reasons:
        return None
    where = f"the path {shorten(str(exc.filename))}" if exc.filename is not None else "a path"
    return InputError(f"{where} {reasons[exc.errno]}")


@click.group(cls=EdgeoptGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeopt")
def cli() -> None:
    """Compress Keras models into small, fast, verified TFLite/LiteRT models, and prove it.

    \b
    Exit codes: 0 ok; 1 a check failed (regression, budget, verification, conversion);
    2 bad usage or input; 3 environment problem (tool missing, board unreachable).
    """


def emit_json(document: object) -> None:
    """Print one machine-readable JSON document to stdout."""
    click.echo(json.dumps(document, indent=2, sort_keys=False))


def _path_or_name(_ctx, param: click.Parameter, value: str | None) -> str | None:
    """``--model`` / ``--data``: a name, a YAML mapping (its path is checked with the data), or a path
    that a system call can take (:func:`~edgeopt.paths.check_path`)."""
    if value is not None and not value.lstrip().startswith("{"):
        check_path(value, param.opts[0])
    return value


def _data_option(value: str | None):
    """``--data``: a built-in name or a path as given, or a YAML mapping with options (``{path: images/,
    image_size: [96, 96]}``), as a recipe's ``data:`` takes them."""
    if value is None or not value.lstrip().startswith("{"):
        return value

    return load_yaml(value, "--data")


DATA_HELP = ("Built-in dataset (digits, digits32, facepose), an .npz or .csv file, a folder of class "
             "folders, or a mapping with options as in a recipe, e.g. '{path: images/, image_size: [96, 96], "
             "scale: 0.00392156862745098}'.")


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models_cmd(as_json: bool) -> None:
    """List the model zoo with parameter counts (no TensorFlow needed)."""
    rows = [
        {"name": e.name, "task": e.task, "data": e.default_data, "params": e.params, "about": e.about}
        for e in api.models()
    ]
    if as_json:
        emit_json(rows)
        return

    click.echo(table(["model", "task", "data", "params", "about"],
                     [[r["name"], r["task"], r["data"], f"{r['params']:,}", r["about"]] for r in rows]))


def trust_options(command):
    """--trust-model and --custom-objects, as every command that loads a saved model takes them."""
    command = click.option(
        "--custom-objects", "custom_objects", multiple=True, metavar="MODULE",
        help="A module (dotted name or .py file) defining the model's custom layers; imported with "
             "--trust-model only (recipe: custom_objects). Repeatable.")(command)
    return click.option(
        "--trust-model", is_flag=True,
        help="Let code stored in the model files (Lambda layers) run when they load (recipe: trust_model: "
             "true). Only for files from a source you trust.")(command)


def _trust_sets(trust_model: bool, custom_objects: tuple[str, ...]) -> list[RecipeChange]:
    """--trust-model and --custom-objects as recipe changes (typed: never read back as text)."""
    sets = [RecipeChange("trust_model", True)] if trust_model else []
    if custom_objects:
        sets.append(RecipeChange("custom_objects", list(custom_objects)))
    return sets


@cli.command("train")
@click.argument("model_name")
@click.option("--data", "data_name", default=None, callback=_path_or_name,
              help="Built-in dataset or .npz (default: the model's).")
@click.option("--out", "out_dir", required=True, type=UserPath(output=True), help="Output folder.")
@click.option("--epochs", type=int, default=None, help="Training epochs (default 30).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@trust_options
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's own messages and warnings (by default kept in DIR/edgeopt.log).")
def train_cmd(model_name, data_name, out_dir, epochs, seed, overrides, overwrite, quiet, trust_model,
              custom_objects, verbose) -> None:
    """Build a zoo model (or load a saved one) and train it; saves model.keras and a report."""
    # Typed changes, never read as YAML: a model or dataset named "on" or "1e3" stays that name.
    data = _data_option(data_name) if data_name else default_data_for(model_name)
    sets = [RecipeChange("seed", seed), RecipeChange("stages", []), RecipeChange("export", ["float32"]),
            # train means train: a saved model too (a recipe leaves a saved model untrained by default)
            RecipeChange("train.epochs", epochs if epochs is not None else 30)]
    recipe = api.load_recipe(None, [*sets, *_trust_sets(trust_model, custom_objects), *overrides],
                             model=model_name, data=data)

    with captured(verbose) as log:
        report = api.run(recipe, out_dir, overwrite=overwrite, quiet=quiet, log=log).report
    click.echo(api.render_report(report, "table"), nl=False)
    click.echo(f"saved {out_dir}/model.keras (and its float32 .tflite, report.json)", err=True)


@cli.command("compress")
@click.argument("recipe_path", required=False, type=UserPath())
@click.option("--preset", type=click.Choice(preset_names()),
              help="Instead of a recipe: a recipe shipped with edgeopt, with --model and --data filled in. "
                   "Presets use a saved model as it is (train.epochs 0).")
@click.option("--model", "model", callback=_path_or_name,
              help="A saved Keras model (.keras, .h5, SavedModel folder) or a zoo name: the preset's model, "
                   "or replaces the recipe's.")
@click.option("--data", "data", callback=_path_or_name,
              help=f"The preset's data, or replaces the recipe's. {DATA_HELP}")
@click.option("--out", "out_dir", type=UserPath(output=True), help="Output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. --set train.epochs=2 (repeatable).")
@click.option("--dump-recipe", is_flag=True, help="Print the resolved recipe as YAML and exit.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout.")
@trust_options
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's own messages and warnings (by default kept in DIR/edgeopt.log).")
def compress_cmd(recipe_path, preset, model, data, out_dir, overrides, dump_recipe, overwrite, quiet, as_json,
                 trust_model, custom_objects, verbose) -> None:
    """Run a recipe: train, apply the stages, export, verify, evaluate and benchmark every .tflite.

    \b
    Without a recipe: edgeopt compress --model m.keras --data images/ --preset prune-qat-int8 --out DIR
    Writes each .tflite, report.json, report.md and recipe.resolved.yaml (the recipe that reproduces
    the run) into --out, built in a temporary folder and moved into place only when complete.
    """
    sets = [*overrides, *_trust_sets(trust_model, custom_objects)]
    if preset is not None:
        if recipe_path is not None:
            raise click.UsageError(f"give a recipe ({recipe_path}) or --preset {preset}, not both")
        missing = [option for option, value in (("--model", model), ("--data", data)) if value is None]
        if missing:
            raise click.UsageError(f"--preset {preset} needs {' and '.join(missing)}")
    recipe = api.load_recipe(recipe_path, sets, preset=preset, model=model, data=_data_option(data))
    if dump_recipe:
        click.echo(dump(recipe), nl=False)
        return
    if out_dir is None:
        raise click.UsageError("--out DIR is required (or use --dump-recipe)")

    with captured(verbose) as log:
        report = api.run(recipe, out_dir, overwrite=overwrite, quiet=quiet, recipe_path=recipe_path,
                         log=log).report
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(api.render_report(report, "table"), nl=False)
        click.echo(f"\nwrote {out_dir}/report.json", err=True)
    if not report.ok:
        click.echo("edgeopt: check failed: " + "; ".join(report.failures()), err=True)
        click.get_current_context().exit(EXIT_CHECK_FAILED)


@cli.command("inspect")
@click.argument("model_path", type=UserPath())
@click.option("--json", "as_json", is_flag=True, help="Print the full inspection as JSON.")
@click.option("--pattern", default="2:4", show_default=True, metavar="M:N",
              help="Structured-sparsity pattern to check (at most M non-zeros in N), besides 2:4.")
def inspect_cmd(model_path, as_json, pattern) -> None:
    """Read a .tflite flatbuffer: ops and dtypes, params, MACs, sparsity, 2:4, clusters, float ops.

    Needs no TensorFlow: the file is parsed, never run.
    """
    try:
        m_by_n = parse_m_by_n(pattern)
    except ValueError:
        raise click.BadParameter(f"expected M:N with 0 < M < N (e.g. 1:4), got {pattern!r}",
                                 param_hint="--pattern") from None
    info = api.inspection(model_path, pattern=m_by_n or (2, 4))
    if as_json:
        emit_json(info.to_json())
        return
    click.echo("\n".join(summary_lines(info)))

    click.echo(table(IO_HEADERS, io_rows(info)))

    def share(value):
        return "-" if value is None else f"{value:.3f}"

    asked = info.pattern_structure
    extra = [asked] if asked != "2:4" else []
    rows = [[name, t.role, "x".join(map(str, t.shape or [])), t.dtype, share(t.sparsity), t.unique_values,
             share(t.pattern_2_4), *([share(t.pattern_share)] if extra else [])]
            for name, t in info.per_tensor.items()]
    if rows:
        click.echo(table(["tensor", "role", "shape", "dtype", "sparsity", "unique", "2:4", *extra], rows))


@cli.command("evaluate")
@click.argument("model_path", type=UserPath())
@click.option("--data", "data", required=True, callback=_path_or_name, help=DATA_HELP)
@click.option("--batch", type=click.IntRange(1, 65536), default=256, show_default=True,
              help="Samples per interpreter call (a model with a fixed batch runs one at a time).")
@click.option("--split", type=click.Choice(["test", "all"]), default=None,
              help="test: the test split compress scores (the data's own, or the seeded 20 % edgeopt holds "
                   "out); all: every sample. Default: all for an image folder without train/ and test/ "
                   "folders, test otherwise.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as one JSON document.")
def evaluate_cmd(model_path, data, batch, split, as_json) -> None:
    """Accuracy (top-5 too, beyond 5 classes) or MAE and RMSE of a .tflite on DATA.

    \b
    The .tflite runs through the LiteRT interpreter in a child process; integer inputs and outputs
    are quantized and dequantized with the model's own scales. An image folder without train/ and
    test/ folders is your test set: all of it is scored. Other data is scored on its test split: the
    dataset's own (a CSV's test file: '{train: a.csv, test: b.csv}'), or the 20 % that edgeopt holds
    out (seeded) when the data has no split, as compress does (--split test for a folder too).
    A classifier at or below chance gets a warning naming the likely causes.
    Exit codes: 0 ok; 1 LiteRT failed or crashed on the model; 2 bad input (not a .tflite, unusable
    data, data that does not fit the model: sample shape, labels beyond its outputs).
    """
    evaluation = api.evaluate_tflite(model_path, _data_option(data), batch=batch, split=split)
    if as_json:
        emit_json(evaluation.to_json())
    else:
        click.echo("\n".join(evaluation.lines()))
    for warning in evaluation.warnings:
        click.echo(f"edgeopt: warning: {warning}", err=True)


@cli.command("report")
@click.argument("report_path", type=UserPath())
@click.option("--format", "fmt", type=click.Choice(["table", "md", "html"]), default="table",
              show_default=True, help="Terminal table, Markdown (CI summary) or self-contained HTML.")
@click.option("--out", "out_file", type=UserPath(output=True), help="Write to FILE instead of stdout.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def report_cmd(report_path, fmt, out_file, overwrite) -> None:
    """Render a report.json as a table, Markdown or HTML (no TensorFlow needed)."""
    report = api.load_report(report_path)
    if out_file is not None:
        _check_writable(out_file, "--out")
    if out_file is not None and out_file.exists() and not overwrite:
        raise OutputExistsError(f"{out_file} exists; pass --overwrite or choose another --out")
    text = api.render_report(report, fmt)
    if out_file is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    _write_output(out_file, text)
    click.echo(f"wrote {out_file}", err=True)


def _check_writable(path: Path, option: str, folder: bool = False) -> None:
    """Refuse, before any work, an output path that names a folder for a file (or a file for a folder,
    exit 2), or that lies under a file and so cannot be written (exit 3, like any unwritable output).
    """
    wanted = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        actual = "file" if folder else "folder"
        raise InputError(f"{option} {path} is a {actual}; give the path of a {wanted}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise EnvironmentProblem(f"cannot write {option} {path}: {parent} is a file, not a folder")
            break


def _write_output(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror or exc}") from None


@cli.command("check")
@click.argument("report_path", type=UserPath())
@click.option("--baseline", "baseline_path", required=True, type=UserPath(),
              help="The accepted report, e.g. models/<name>/baseline.json.")
@click.option("--tolerances", "tolerances_path", type=UserPath(),
              help="YAML/JSON file overriding the default tolerances (docs/check.md).")
@click.option("--junit", "junit_path", type=UserPath(output=True), help="Write JUnit XML here.")
@click.option("--markdown", "markdown_path", type=UserPath(output=True),
              help="Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON on stdout.")
@click.option("--update-baseline", is_flag=True,
              help="Accept this report: write it (trimmed) to --baseline for review in version control.")
def check_cmd(report_path, baseline_path, tolerances_path, junit_path, markdown_path, as_json,
              update_baseline) -> None:
    """Compare a report with its baseline and the recipe's budgets; exit 1 on a regression.

    \b
    Latency is compared as the ratio of each variant's fastest invoke (min_ms) to the
    trained_float32 variant's on the same target in the same report, so a slower or busier CI
    machine does not flap the check (docs/check.md).
    Regressions and improvements are both reported. Exit codes: 0 pass; 1 regression or budget
    missed; 2 bad input (missing/invalid report or baseline, other model, schema mismatch);
    3 environment (cannot write an output).
    """
    for path, option in ((junit_path, "--junit"), (markdown_path, "--markdown")):
        if path is not None:
            _check_writable(path, option)
    if update_baseline:
        _check_writable(baseline_path, "--baseline")
    result = api.check(report_path, baseline_path, tolerances_path, update=update_baseline)
    if junit_path is not None:
        _write_output(junit_path, result.to_junit())
    if markdown_path is not None:
        _write_output(markdown_path, result.to_markdown())
    if as_json:
        emit_json(result.to_json())
        click.echo(result.summary(), err=True)  # stdout holds the document only
    else:
        click.echo(result.to_table())  # the table ends with the summary line
    if result.update is not None:
        warning = "edgeopt: " if result.update == BaselineUpdate.REFUSED else ""
        click.echo(warning + result.update_message(), err=True)
    click.get_current_context().exit(result.exit_code)


def _parse_threads(_ctx, _param, value: str) -> list[int]:
    try:
        threads = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        threads = []
    if not threads or any(t < 1 for t in threads):
        raise click.BadParameter(f"expected positive integers separated by commas, e.g. 1,2,4; got {value!r}")
    return threads


class _BenchmarkCommand(click.Command):
    """The benchmark command, whose help names the targets of edgeopt.bench's registry when shown."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        together = ", ".join(parallel_prefixes())
        for param in self.params:
            if param.name == "targets":
                param.help = f"{targets_help()} (repeatable" + (
                    f"; {together} targets run in parallel)." if together else ").")
        self.help = BENCHMARK_HELP.format(provenance=provenance_help())
        super().format_help(ctx, formatter)


BENCHMARK_HELP = """Time .tflite models on targets: one row per model x target x threads.

    \b
    Provenance of each row, by target: {provenance}.
    Emulated timings are QEMU's, and emulated rows report the max abs output difference vs x86;
    estimated rows hold p50 only. A failing row keeps its reason and the others still run.
    Exit codes: 0 all rows ok; 1 a measurement failed (e.g. the runtime crashed);
    2 bad input (file, target, inputs, settings); 3 environment (board unreachable,
    authentication, no Python/runtime, qemu missing, timeout).
    """
# How the benchmark command's user spells each BenchSpec field, for its messages.
BENCHMARK_OPTIONS = {"targets": "--target", "threads": "--threads", "runs": "--runs", "warmup": "--warmup",
                     "min_seconds": "--min-seconds", "xnnpack": "--no-xnnpack", "timeout": "--timeout",
                     "inputs": "--inputs", "seed": "--seed", "ssh_config": "--ssh-config"}


@cli.command("benchmark", cls=_BenchmarkCommand, help=BENCHMARK_HELP)
@click.argument("models", nargs=-1, required=True, type=UserPath())
@click.option("--target", "targets", multiple=True, default=("local",), show_default=True,
              help="Where to run (repeatable); `edgeopt benchmark --help` lists the forms.")
@click.option("--threads", default="1", show_default=True, callback=_parse_threads,
              help="Interpreter thread counts, comma separated, e.g. 1,2,4.")
@click.option("--runs", type=int, default=100, show_default=True, help="At least this many timed invokes.")
@click.option("--min-seconds", type=float, default=0.5, show_default=True,
              help="And time invokes for at least this long.")
@click.option("--warmup", type=int, default=10, show_default=True,
              help="Warm-up invokes before timing (and at least 0.1 s).")
@click.option("--no-xnnpack", is_flag=True, help="Disable LiteRT's default XNNPACK delegate.")
@click.option("--inputs", type=UserPath(),
              help=".npy (one input) or .npz (by input name or order) instead of random inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--timeout", type=float, default=300, show_default=True,
              help="Seconds allowed per measurement (and per SSH step).")
@click.option("--ssh-config", type=UserPath(),
              help="SSH config file passed to ssh -F (default: $EDGEOPT_SSH_CONFIG, else ssh's own).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON document.")
@click.option("--out", "out_dir", type=UserPath(output=True), help="Also write DIR/benchmark.json.")
@click.option("--overwrite", is_flag=True, help="Replace an existing DIR/benchmark.json.")
def benchmark_cmd(models, targets, threads, runs, min_seconds, warmup, no_xnnpack, inputs, seed, timeout,
                  ssh_config, as_json, out_dir, overwrite) -> None:
    # The help is BENCHMARK_HELP: it names the targets, which come from the registry.

    spec = make_spec({"targets": list(targets), "threads": threads, "runs": runs, "warmup": warmup,
                      "min_seconds": min_seconds, "xnnpack": not no_xnnpack, "timeout": timeout,
                      "seed": seed, **({"inputs": str(inputs)} if inputs is not None else {}),
                      "ssh_config": None if ssh_config is None else str(ssh_config)},
                     names=BENCHMARK_OPTIONS)
    out_file = None if out_dir is None else out_dir / "benchmark.json"
    if out_dir is not None:
        _check_writable(out_dir, "--out", folder=True)
        _check_writable(out_file, "--out")
    if out_file is not None and out_file.exists() and not overwrite:
        raise OutputExistsError(f"{out_file} exists; pass --overwrite or choose another --out")
    result = api.benchmark_models(models, spec)
    if len(result.rows) == 1 and result.exit_code != 0 and not as_json and out_file is None:
        click.echo(f"edgeopt: error: {result.rows[0]['reason']}", err=True)
        click.get_current_context().exit(result.exit_code)
    document = result.to_json()
    if out_file is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_output(out_file, json.dumps(document, indent=2) + "\n")
    if as_json:
        emit_json(document)
    else:
        click.echo(table(TABLE_HEADERS, table_rows(result.rows)))
        for note in target_notes(result.rows):
            click.echo(f"  {note}")
    for row, code in zip(result.rows, result.codes, strict=True):
        if code != 0:
            click.echo(f"edgeopt: {row['model']} on {row['target']} ({row['threads']} threads): "
                       f"{row['reason']}", err=True)
    if out_file is not None:
        click.echo(f"wrote {out_file}", err=True)
    click.get_current_context().exit(result.exit_code)


@cli.command("diagnose")
@click.argument("model", type=UserPath())
@click.option("--data", "data", callback=_path_or_name,
              help=f"Needed with a model file; replaces a recipe's. {DATA_HELP}")
@click.option("--samples", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Training samples to calibrate int8 on and to compare each op on.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as one JSON document.")
@trust_options
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own messages and warnings.")
def diagnose_cmd(model, data, samples, as_json, trust_model, custom_objects, verbose) -> None:
    """Find the Keras layers that full int8 quantization hurts, worst first.

    \b
    MODEL is a saved Keras model (.keras, .h5, SavedModel folder; tf_keras or Keras 3) or a recipe
    (.yaml/.yml), whose saved model and data are diagnosed as saved (no training, no stages).
    TensorFlow Lite's QuantizationDebugger compares every int8 op with the same op in float on
    --samples training inputs (calibrated on the same ones, as compress does). Two figures, both RMS
    errors in int8 steps (rounding alone gives about 0.29): ops rmse/scale, the error a layer's worst
    op adds, in steps of its own output scale; input rmse/scale, the error of the layer's int8 input
    for its median channel, in steps of the scale that channel's own range would get (large when one
    scale serves features of very different ranges, or a channel with rare huge values). Layers are
    ranked by the larger, worst first; each shows its input's float range against the one scale and
    zero point its int8 input got.
    Exit codes: 0 ok; 1 the converter refused the model; 2 bad input.
    """
    is_recipe = model.suffix.lower() in (".yaml", ".yml")
    if not is_recipe and data is None:
        raise click.UsageError(f"--data is needed with a model file ({model}); a recipe names its own")
    recipe = api.load_recipe(model if is_recipe else None, _trust_sets(trust_model, custom_objects),
                             model=None if is_recipe else str(model), data=_data_option(data))

    with captured(verbose) as log:
        diagnosis = api.diagnose(recipe, samples=samples, log=log)
    if as_json:
        emit_json(diagnosis.to_json())
    else:
        click.echo("\n".join(diagnosis.lines()))


from edgeopt import api
from edgeopt.bench import make_spec, parallel_prefixes, provenance_help, targets_help
from edgeopt.bench.stats import TABLE_HEADERS, table_rows, target_notes
from edgeopt.documents import load_yaml
from edgeopt.errors import EnvironmentProblem, InputError, OutputExistsError
from edgeopt.inspect import IO_HEADERS, io_rows, summary_lines
from edgeopt.logs import captured
from edgeopt.outputs import catch_interrupts, environment_error, interrupted, write_text_atomic
from edgeopt.paths import shorten
from edgeopt.recipe import RecipeChange, parse_m_by_n
from edgeopt.recipe import dump_recipe as dump
from edgeopt.regress import BaselineUpdate
from edgeopt.render import table
from edgeopt.tune.command import tune_cmd  # noqa: E402  (its module imports no TensorFlow either)
from edgeopt.zoo import default_data_for

cli.add_command(tune_cmd)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="edgeopt")


if __name__ == "__main__":  # pragma: no cover
    main()
