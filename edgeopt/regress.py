"""Compare a report with a baseline: the CI regression gate behind ``edgeopt check``. No TensorFlow.

:func:`check` is the whole of ``edgeopt check``: it compares a report with the baseline at a path,
and with ``update=True`` accepts the report as the new baseline when the report itself has no
failures. :func:`compare` takes two :class:`~edgeopt.types.Report`\\ s (a baseline is a report,
usually trimmed by :func:`make_baseline`) and returns a :class:`CheckResult`: one :class:`Finding`
per variant, target and check, passes included, so CI systems can list every check as a test case
(:meth:`CheckResult.to_junit`).

What is compared (tolerances in :class:`Tolerances`, overridable from a YAML/JSON file):

* size and gzip size of every variant: relative tolerance (bigger beyond it is a regression,
  smaller beyond it an improvement);
* the task's metric (accuracy or MAE): absolute tolerance in the metric's unit, in its direction;
  the other metrics (top-5 accuracy, RMSE) likewise when the tolerances name them (``metric_abs``,
  or an explicit ``default_metric_abs``), else their changes are notes. Only the baseline's metrics
  are compared, so a metric the report adds (a baseline from before it existed) passes, while the
  task's metric missing from the report fails;
* weight sparsity (absolute) and int8 op coverage (absolute); a float op appearing in a variant that
  had none of that type is a regression (float fallback);
* latency as a RATIO: variant p50 / ``trained_float32`` p50 on the same target in the same report,
  compared with the same ratio in the baseline. On a shared CI machine absolute timings drift with
  load and hardware, but a variant and its reference measured minutes apart in one run drift
  together, so the ratio is stable while a real change in the variant (a float fallback, a slower
  kernel) moves it. The reference's own absolute latency is reported as a note, and fails only
  when ``latency_absolute_rel`` is set. A change of threads, delegate or provenance between
  baseline and report is a regression: the figures are no longer comparable;
* budgets from the report's resolved recipe (:class:`edgeopt.budgets.Budgets`: ``max_size_kb``,
  ``max_gzip_kb``, ``max_accuracy_drop``, ``max_error_increase``, ``max_latency_ms: {TARGET[#Nt]: ms}``),
  independent of the baseline, judged by :func:`edgeopt.budgets.judge` (as ``tune`` judges them);
* a failed variant, a failed latency measurement, a failed verification check, a variant or target
  missing from the report: failures. Variants or targets new in the report are notes.

A baseline from another model, task or dataset raises :class:`~edgeopt.errors.InputError` (exit 2).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from edgeopt.budgets import Budgets, Figures, Verdict, judge
from edgeopt.documents import load_yaml, read_text
from edgeopt.errors import EXIT_CHECK_FAILED, EXIT_OK, EnvironmentProblem, InputError
from edgeopt.outputs import write_text_atomic
from edgeopt.render import table
from edgeopt.report import as_report, load_report, markdown_table
from edgeopt.report.cells import fmt_time  # latencies as every report shows them
from edgeopt.strict import Strict
from edgeopt.techniques import TECHNIQUES
from edgeopt.types import (
    FloatOp,
    LatencyEntry,
    LatencyKey,
    Provenance,
    Report,
    Status,
    Variant,
    base_metric,
    finite,
)
from edgeopt.validation import describe

PASS = "pass"
REGRESSION = "regression"
IMPROVEMENT = "improvement"
FAIL = "fail"
NOTE = "note"
NEW = "new"
FAILING = (REGRESSION, FAIL)
MARKS = {PASS: "✅", REGRESSION: "❌", FAIL: "❌", IMPROVEMENT: "⬆️", NOTE: "ℹ️", NEW: "🆕"}

CHECK_NAMES = ("size", "gzip", "metric", "sparsity", "op_coverage", "float_ops", "latency", "setup",
               "budget", "recipe")


class Tolerances(Strict):
    """How far a figure may move from the baseline before it counts as a change.

    A move beyond the tolerance in the bad direction is a regression, in the good direction an
    improvement (reported so stale baselines get refreshed).
    """

    size_rel: float = Field(0.02, ge=0, description="relative change of size_bytes")
    gzip_rel: float = Field(0.03, ge=0, description="relative change of gzip_bytes")
    metric_abs: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 0.01, "mae": 0.25},
        description="absolute tolerance per metric name, in the metric's unit",
    )

    @field_validator("metric_abs")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, tol in value.items():
            if tol < 0:
                raise ValueError(f"{name} must be >= 0, got {tol}")
        return value
    default_metric_abs: float = Field(0.0, ge=0, description="for metrics not in metric_abs; set, it gates "
                                      "them all (otherwise only the task's metric and those in metric_abs)")
    sparsity_abs: float = Field(0.01, ge=0)
    op_coverage_abs: float = Field(0.0, ge=0, description="int8_op_coverage")
    latency_ratio_rel: float = Field(
        0.15, ge=0, description="relative change of (variant p50 / reference p50) on the same target"
    )
    latency_field: Literal["min_ms", "p50_ms", "p90_ms", "mean_ms"] = Field(
        "min_ms", description="which timing forms the ratio; see docs/check.md for why min by default"
    )
    latency_reference: str | None = Field(
        None, description="the variant latency ratios are taken against (default: the report's reference, "
        "trained_float32 or original)")
    latency_absolute_rel: float | None = Field(
        None, ge=0, description="if set, the reference's absolute latency may grow by at most this much"
    )
    skip: list[Literal[CHECK_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="checks not to run, e.g. [latency] where timing is meaningless"
    )


def load_tolerances(path: str | Path | None) -> Tolerances:
    """Read tolerances from a YAML or JSON file (keys of :class:`Tolerances`); None gives defaults.

    Raises:
        InputError: missing file, not YAML, unknown key or invalid value (naming the key).
    """
    if path is None:
        return Tolerances()
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the path of a tolerances YAML/JSON file")
    if not path.is_file():
        raise InputError(f"{path}: tolerances file not found")
    data = load_yaml(read_text(path), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: tolerances must be a mapping, got {type(data).__name__}")
    if "metric_abs" in data and isinstance(data["metric_abs"], dict):
        data = {**data, "metric_abs": {**Tolerances().metric_abs, **data["metric_abs"]}}
    try:
        return Tolerances.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {describe(exc, whole='tolerances')}") from None


def report_budgets(report: Report) -> Budgets | None:
    """The budgets of the report's resolved recipe, typed; None when it has none.

    Raises:
        InputError: the budgets do not validate (naming the field, e.g. ``recipe.budgets.max_size_kb``).
    """
    budgets = report.recipe.get("budgets")
    if not budgets:
        return None
    try:
        return Budgets.model_validate(budgets)
    except ValidationError as exc:
        raise InputError(f"report: {describe(exc, root='recipe.budgets')}") from None


@dataclass(frozen=True)
class Finding:
    """One compared figure: what, where, baseline versus measured, and the verdict."""

    variant: str
    check: str
    status: str
    message: str
    target: str | None = None
    baseline: Any = None
    measured: Any = None
    tolerance: str | None = None

    @property
    def failing(self) -> bool:
        """True for a regression or a failure."""
        return self.status in FAILING

    @property
    def case_name(self) -> str:
        """``check`` or ``check@target``: the JUnit test-case name."""
        return f"{self.check}@{self.target}" if self.target else self.check


class BaselineUpdate(StrEnum):
    """What ``check(..., update=True)`` did with the baseline file."""

    WRITTEN = "written"  # the report was accepted: its trimmed copy is the baseline now
    REFUSED = "refused"  # the report itself has failures (variants, checks, budgets): file left as it was


@dataclass(frozen=True)
class CheckResult:
    """All findings of one comparison, and what became of the baseline when an update was asked."""

    name: str
    findings: tuple[Finding, ...] = ()
    baseline_created: str | None = None
    report_created: str | None = None
    baseline_path: str | None = None
    update: BaselineUpdate | None = None  # None: no update was asked

    @property
    def passed(self) -> bool:
        """No regression and no failure."""
        return not any(f.failing for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 when passed or when the report was accepted as the new baseline, else 1."""
        return EXIT_OK if self.passed or self.update == BaselineUpdate.WRITTEN else EXIT_CHECK_FAILED

    def counts(self) -> dict[str, int]:
        """Number of findings per status."""
        return dict(Counter(f.status for f in self.findings))

    def summary(self) -> str:
        """One line: verdict and counts."""
        counts = self.counts()
        plural = {PASS: "passes", NEW: "new", FAIL: "failures"}
        parts = [f"{counts[s]} {s if counts[s] == 1 else plural.get(s, s + 's')}"
                 for s in (REGRESSION, FAIL, IMPROVEMENT, NEW, NOTE, PASS) if counts.get(s)]
        verdict = "PASSED" if self.passed else "FAILED"
        return f"edgeopt check {self.name}: {verdict} ({', '.join(parts) or 'nothing compared'})"

    def update_message(self) -> str | None:
        """What happened to the baseline, in one line; None when no update was asked."""
        if self.update == BaselineUpdate.WRITTEN:
            counts = self.counts()
            return (f"wrote {self.baseline_path}: accepted {counts.get(REGRESSION, 0)} regressions, "
                    f"{counts.get(IMPROVEMENT, 0)} improvements, {counts.get(NEW, 0)} new; "
                    "review the diff before committing")
        if self.update == BaselineUpdate.REFUSED:
            return (f"not updating {self.baseline_path}: the report itself has failures "
                    "(failed variants, checks or budgets)")
        return None

    def to_json(self) -> dict[str, Any]:
        """A machine-readable document (``edgeopt check --json``)."""
        written = self.update == BaselineUpdate.WRITTEN
        return {"name": self.name, "passed": self.passed, "exit_code": self.exit_code,
                "counts": self.counts(), "baseline_created_utc": self.baseline_created,
                "report_created_utc": self.report_created,
                "findings": [{**asdict(f), "failing": f.failing} for f in self.findings],
                "baseline_updated": self.baseline_path if written else None}

    def rows(self) -> list[list[str]]:
        """Rows for tables: status, variant, check, target, baseline, measured, message."""
        order = {REGRESSION: 0, FAIL: 0, IMPROVEMENT: 1, NEW: 2, NOTE: 3, PASS: 4}
        ranked = sorted(self.findings, key=lambda f: order.get(f.status, 5))
        return [[f.status, f.variant, f.check, f.target or "", _show(f.baseline), _show(f.measured),
                 f.message] for f in ranked]

    def to_table(self) -> str:
        """The terminal rendering: every finding, failures first, then the summary line."""
        headers = ["status", "variant", "check", "target", "baseline", "measured", "detail"]
        return table(headers, self.rows()) + "\n" + self.summary()

    def to_markdown(self) -> str:
        """Markdown for a CI job summary: verdict, one table, failures first."""
        mark = "✅" if self.passed else "❌"
        head = [f"### {mark} {self.summary()}", ""]
        rows = [[MARKS.get(r[0], "") + " " + r[0], f"`{r[1]}`", *r[2:]] for r in self.rows()]
        headers = ["status", "variant", "check", "target", "baseline", "measured", "detail"]
        return "\n".join(head + [markdown_table(headers, rows), ""])

    def to_junit(self) -> str:
        """JUnit XML: one test case per finding; regressions and failures are <failure>s."""
        failures = sum(1 for f in self.findings if f.failing)
        suites = ET.Element("testsuites", name="edgeopt check", tests=str(len(self.findings)),
                            failures=str(failures), errors="0")
        suite = ET.SubElement(suites, "testsuite", name=f"edgeopt check {self.name}",
                              tests=str(len(self.findings)), failures=str(failures), errors="0", skipped="0")
        for f in self.findings:
            case = ET.SubElement(suite, "testcase", classname=f"edgeopt.{self.name}.{f.variant}",
                                 name=f.case_name)
            if f.failing:
                failure = ET.SubElement(case, "failure", message=f.message, type=f.status)
                failure.text = f"baseline {_show(f.baseline)}; measured {_show(f.measured)}; " \
                               f"tolerance {f.tolerance or '-'}"
            elif f.status != PASS:
                ET.SubElement(case, "system-out").text = f"{f.status}: {f.message}"
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value) or "(none)"
    return str(value)


def _op_counts(ops: Sequence[FloatOp]) -> Counter[str]:
    """Op-type counts from an inspection's ``float_ops``."""
    return Counter(o.op for o in ops)


def _show_ops(counts: Counter[str]) -> str:
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(counts.items())) or "(none)"


def _timing(variant: Variant | None, target: LatencyKey, fld: str) -> float | None:
    """A successful latency figure of ``variant`` on ``target``, else None."""
    entry = variant.latency.get(target) if variant else None
    return entry.value(fld) if entry else None


def _identity(report: Report) -> dict[str, Any]:
    return {"name": report.name, "model": report.recipe.get("model"), "task": report.task,
            "data": report.recipe.get("data") or report.data.get("name")}


def check_same_model(report: Report, baseline: Report) -> None:
    """Refuse to compare reports of different models, tasks or datasets.

    Raises:
        InputError: naming the field that differs.
    """
    mine, theirs = _identity(report), _identity(baseline)
    for key in ("name", "model", "task", "data"):
        if mine[key] is not None and theirs[key] is not None and mine[key] != theirs[key]:
            raise InputError(
                f"baseline is for {key} '{theirs[key]}' but the report is for '{mine[key]}'; "
                "give the baseline of this model (models/<name>/baseline.json)"
            )


class _Comparer:
    """Builds the findings of one report against a baseline (None: the report's own failures only)."""

    def __init__(self, report: Report, baseline: Report | None, tol: Tolerances, budgets: Budgets | None):
        self.report, self.baseline, self.tol, self.budget_spec = report, baseline, tol, budgets
        self.findings: list[Finding] = []
        self.r_vars = {v.name: v for v in report.variants}
        self.b_vars = {v.name: v for v in baseline.variants} if baseline else {}
        self.other_cpu = cpu_difference(report, baseline) if baseline else None

    def add(self, variant: str, check: str, status: str, message: str, *,
            target: LatencyKey | str | None = None, **kw: Any) -> None:
        """One finding; a latency key's ``target`` is kept as report.json spells it (``local#4t``)."""
        self.findings.append(Finding(variant=variant, check=check, status=status, message=message,
                                     target=None if target is None else str(target), **kw))

    def enabled(self, check: str) -> bool:
        return check not in self.tol.skip

    # -- relative and absolute comparisons ------------------------------------------------------------

    def relative(self, variant: str, check: str, label: str, base: Any, now: Any, rel: float,
                 lower_is_better: bool = True, unit: str = "", target: str | None = None) -> None:
        b, n = finite(base), finite(now)
        tol = f"±{100 * rel:g}%"
        if b is None and n is None:
            return
        if n is None:
            self.add(variant, check, FAIL, f"{label} missing or not a number in the report",
                     target=target, baseline=base, measured=now, tolerance=tol)
            return
        if b is None:
            self.add(variant, check, NOTE, f"{label} not in the baseline", target=target, measured=n,
                     tolerance=tol)
            return
        change = (n - b) / b if b else (0.0 if n == b else math.inf)
        worse = change > rel if lower_is_better else change < -rel
        better = change < -rel if lower_is_better else change > rel
        status = REGRESSION if worse else IMPROVEMENT if better else PASS
        text = f"{label} {_show(b)}{unit} -> {_show(n)}{unit} ({100 * change:+.1f}%)"
        self.add(variant, check, status, text, target=target, baseline=b, measured=n, tolerance=tol)

    def absolute(self, variant: str, check: str, label: str, base: Any, now: Any, tol_abs: float,
                 higher_is_better: bool, unit: str = "", gated: bool = True) -> None:
        """Compare within an absolute tolerance; not ``gated``: compared and shown, never failing (what
        would be a regression, an improvement or a failure is a note)."""
        tol = f"±{tol_abs:g}{unit}"

        def add(status: str, message: str, **kw: Any) -> None:
            if not gated and status in (REGRESSION, IMPROVEMENT, FAIL):
                status, message = NOTE, f"{message}; not gated (no tolerance for {check})"
            self.add(variant, check, status, message, tolerance=tol, **kw)

        b, n = finite(base), finite(now)
        if b is None and n is None:
            return
        if n is None:
            add(FAIL, f"{label} missing or not a number in the report", baseline=base, measured=now)
            return
        if b is None:
            add(NOTE, f"{label} not in the baseline", measured=n)
            return
        delta = n - b
        # a hair of slack so that a change of exactly the tolerance passes despite float rounding
        eps = 1e-9 * max(1.0, abs(b))
        worse = delta < -tol_abs - eps if higher_is_better else delta > tol_abs + eps
        better = delta > tol_abs + eps if higher_is_better else delta < -tol_abs - eps
        status = REGRESSION if worse else IMPROVEMENT if better else PASS
        add(status, f"{label} {_show(b)}{unit} -> {_show(n)}{unit} ({delta:+.4g})", baseline=b, measured=n)

    # -- per variant ---------------------------------------------------------------------------------

    def failed_variant(self, v: Variant) -> None:
        self.add(v.name, "variant", FAIL, f"variant failed: {v.reason or 'no reason given'}")

    def run(self) -> list[Finding]:
        for name, b in self.b_vars.items():
            r = self.r_vars.get(name)
            if r is None:
                self.add(name, "variant", FAIL, "variant in the baseline is missing from the report")
            elif not r.ok:
                self.failed_variant(r)
            elif not b.ok:
                self.add(name, "variant", NOTE, "variant failed in the baseline; nothing to compare")
            else:
                self.variant(name, r, b)
        for name, r in self.r_vars.items():
            if name in self.b_vars:
                continue
            if not r.ok:
                self.failed_variant(r)
            else:
                self.add(name, "variant", NEW,
                         "variant not in the baseline (refresh it with --update-baseline)")
        for c in self.report.checks:
            if not c.ok:
                self.add(str(c.variant or "*"), f"verify:{c.check or '?'}", FAIL,
                         str(c.message or "verification check failed"), baseline=c.expected,
                         measured=c.measured)
        if self.baseline is not None and self.enabled("recipe"):
            self.recipe()
        if self.budget_spec is not None and self.enabled("budget"):
            self.budgets(self.budget_spec)
        return self.findings

    def recipe(self) -> None:
        """Figures are comparable only between runs of the same recipe (benchmark settings aside)."""
        mine, theirs = self.report.recipe, self.baseline.recipe
        if not mine or not theirs:  # a hand-made report or baseline without its recipe
            return
        differences = recipe_differences(theirs, mine)
        if not differences:
            self.add("*", "recipe", PASS, "same recipe as the baseline "
                     "(benchmark settings and budgets aside)")
            return
        more = len(differences) - 4
        shown = "; ".join(differences[:4]) + (f" and {more} more" if more > 0 else "")
        self.add("*", "recipe", FAIL, f"the report's recipe differs from the baseline's ({shown}): "
                 "its figures are not comparable; check against a baseline made from the same recipe",
                 baseline=len(differences), measured=len(differences))

    def variant(self, name: str, r: Variant, b: Variant) -> None:
        tol = self.tol
        if r.is_tflite and self.enabled("size"):
            self.relative(name, "size", "size", b.size_bytes, r.size_bytes, tol.size_rel, unit=" B")
        if r.is_tflite and self.enabled("gzip"):
            self.relative(name, "gzip", "gzip size", b.gzip_bytes, r.gzip_bytes, tol.gzip_rel, unit=" B")
        if self.enabled("metric"):
            self.metrics(name, r, b)
        if not r.is_tflite:
            return
        if self.enabled("sparsity"):
            self.absolute(name, "sparsity", "weight sparsity", b.sparsity, r.sparsity,
                          tol.sparsity_abs, higher_is_better=True)
        if self.enabled("op_coverage"):
            self.absolute(name, "int8_op_coverage", "int8 op coverage", b.inspect.int8_op_coverage,
                          r.inspect.int8_op_coverage, tol.op_coverage_abs, higher_is_better=True)
        if self.enabled("float_ops") and b.inspect.holds("float_ops"):
            now = r.inspect.float_ops if r.inspect.holds("float_ops") else None
            self.float_ops(name, b.inspect.float_ops, now)
        if self.enabled("latency") or self.enabled("setup"):
            self.latencies(name, r, b)

    def metrics(self, name: str, r: Variant, b: Variant) -> None:
        """The baseline's metrics (one the report adds is not compared: the baseline never had it);
        the task's, and any the tolerances name, gated."""
        tol, primary = self.tol, self.report.primary_metric()
        for mname, bm in b.metrics.items():
            rm = r.metric(mname)
            # A metric of one of several outputs (accuracy/label) takes its metric's tolerance (accuracy).
            key = mname if mname in tol.metric_abs else base_metric(mname)
            gated = (mname == primary or key in tol.metric_abs
                     or "default_metric_abs" in tol.model_fields_set)
            self.absolute(name, mname, mname, bm.value, rm.value if rm else None,
                          tol.metric_abs.get(key, tol.default_metric_abs), bool(bm.higher_is_better),
                          gated=gated)

    def float_ops(self, name: str, base: Sequence[FloatOp], now: Sequence[FloatOp] | None) -> None:
        if now is None:
            self.add(name, "float_ops", FAIL, "float_ops missing from the report's inspection")
            return
        before, after = _op_counts(base), _op_counts(now)
        added = after - before  # more ops of a type in float than before: a fallback
        gone = before - after
        shown = {"baseline": _show_ops(before), "measured": _show_ops(after)}
        if added:
            self.add(name, "float_ops", REGRESSION, f"float fallback: now runs {_show_ops(added)} in float",
                     **shown)
        elif gone:
            self.add(name, "float_ops", IMPROVEMENT, f"no longer in float: {_show_ops(gone)}", **shown)
        else:
            self.add(name, "float_ops", PASS, "same float ops", **shown)

    def latencies(self, name: str, r: Variant, b: Variant) -> None:
        for target, be in b.latency.items():
            if not be.ok:
                continue
            re_ = r.latency.get(target)
            if re_ is None:
                self.add(name, "latency", FAIL, "target in the baseline was not measured in the report",
                         target=target)
            elif not re_.ok:
                self.add(name, "latency", FAIL, f"measurement failed: {re_.reason or 'no reason'}",
                         target=target)
            else:
                if self.enabled("setup"):
                    self.setup(name, target, re_, be)
                if self.enabled("latency"):
                    self.latency_ratio(name, target, re_, be)
        for target in r.latency:
            if target not in b.latency:
                self.add(name, "latency", NEW, "target not in the baseline", target=target)

    def latency_ratio(self, name: str, target: LatencyKey, re_: LatencyEntry, be: LatencyEntry) -> None:
        tol = self.tol
        fld, ref_name = tol.latency_field, tol.latency_reference or self.report.reference_name
        now, base = re_.value(fld), be.value(fld)
        if now is None or now <= 0:
            self.add(name, "latency", FAIL, f"{fld} missing, zero or not a number in the report",
                     target=target, measured=getattr(re_, fld))
            return
        if base is None or base <= 0:
            self.add(name, "latency", FAIL, f"baseline {fld} missing, zero or negative: refresh the "
                     "baseline", target=target, baseline=getattr(be, fld), measured=now)
            return
        if name == ref_name:
            self.reference_latency(name, target, base, now)
            return
        r_ref = _timing(self.r_vars.get(ref_name), target, fld)
        b_ref = _timing(self.b_vars.get(ref_name), target, fld)
        if r_ref is None or r_ref <= 0 or b_ref is None or b_ref <= 0:
            side = "report" if r_ref is None or r_ref <= 0 else "baseline"
            self.add(name, "latency", FAIL, f"no positive {ref_name} {fld} on {target} in the {side}: "
                     "cannot form the latency ratio", target=target)
            return
        r_ratio, b_ratio = now / r_ref, base / b_ref
        change = r_ratio / b_ratio - 1
        worse, better = change > tol.latency_ratio_rel, change < -tol.latency_ratio_rel
        status = REGRESSION if worse else IMPROVEMENT if better else PASS
        measured = str(re_.provenance or "").startswith(Provenance.MEASURED)
        other_cpu = self.other_cpu if measured else None
        if other_cpu:
            status = NOTE  # an int8/float ratio depends on the CPU's instructions (VNNI, AVX-512)
        self.add(name, "latency", status,
                 f"{fld} / {ref_name}: {b_ratio:.3f} -> {r_ratio:.3f} ({100 * change:+.1f}%; "
                 f"{now:.4g} ms vs reference {r_ref:.4g} ms)"
                 + (f"; not gated: {other_cpu}" if other_cpu else ""),
                 target=target, baseline=round(b_ratio, 4), measured=round(r_ratio, 4),
                 tolerance=f"ratio ±{100 * tol.latency_ratio_rel:g}%")

    def reference_latency(self, name: str, target: LatencyKey, base: float, now: float) -> None:
        tol = self.tol
        change = now / base - 1
        text = f"reference {tol.latency_field} {base:.4g} -> {now:.4g} ms ({100 * change:+.1f}%, absolute)"
        if tol.latency_absolute_rel is None:
            self.add(name, "latency", NOTE, text + "; absolute latency is not gated (see docs/check.md)",
                     target=target, baseline=base, measured=now)
            return
        worse, better = change > tol.latency_absolute_rel, change < -tol.latency_absolute_rel
        self.add(name, "latency", REGRESSION if worse else IMPROVEMENT if better else PASS, text,
                 target=target, baseline=base, measured=now,
                 tolerance=f"±{100 * tol.latency_absolute_rel:g}%")

    def setup(self, name: str, target: LatencyKey, re_: LatencyEntry, be: LatencyEntry) -> None:
        changed = []
        for key in ("provenance", "threads", "delegate"):
            before, after = getattr(be, key), getattr(re_, key)
            if before is not None and after is not None and before != after:
                changed.append(f"{key} {before} -> {after}")
        if changed:
            self.add(name, "setup", REGRESSION, "benchmark setup changed, timings not comparable: "
                     + "; ".join(changed), target=target)
        elif be.runtime and re_.runtime and be.runtime != re_.runtime:
            self.add(name, "setup", NOTE, f"runtime {be.runtime} -> {re_.runtime}", target=target)

    # -- budgets ---------------------------------------------------------------------------------------

    def budgets(self, budgets: Budgets) -> None:
        names = budgets.variants or [v.name for v in self.report.variants if v.is_export]
        for name in names:
            v = self.r_vars.get(name)
            if v is None:
                self.add(name, "budget", FAIL, "budgeted variant is missing from the report")
                continue
            if not v.ok:
                self.add(name, "budget", FAIL, f"budgeted variant failed: {v.reason}")
                continue
            figures = Figures.of(self.report, v)
            for verdict in judge(budgets, figures):  # the one judge, as compress's and tune's
                self.budget(v, verdict, figures)

    def budget(self, v: Variant, verdict: Verdict, figures: Figures) -> None:
        """One budget's finding for variant ``v``, in the words the tables show."""
        check = BUDGET_CHECKS[verdict.name]
        status = PASS if verdict.ok else FAIL
        limit, value, task_metric = verdict.limit, verdict.measured, self.report.primary_metric()
        reference = self.report.reference_name
        if verdict.name in ("max_size_kb", "max_gzip_kb"):
            what = "size" if verdict.name == "max_size_kb" else "gzip size"
            self.add(v.name, check, status, f"{what} {_show(value)} KB (budget {limit:g} KB)",
                     baseline=limit, measured=value)
        elif verdict.name == "max_latency_ms":
            if value is None:
                self.add(v.name, check, FAIL, "target not measured (or failed): add it to benchmark.targets",
                         target=verdict.target)
                return
            entry = v.latency.get(verdict.target)
            self.add(v.name, check, status,
                     f"p50 {fmt_time(value)} ({entry.provenance or '?'}), budget {fmt_time(limit)}",
                     target=verdict.target, baseline=limit, measured=value)
        elif value is None:
            zero = " or zero" if verdict.name == "max_error_increase" else ""
            self.add(v.name, check, FAIL, f"{task_metric} of {v.name} or {reference} missing{zero}: cannot "
                     "check the budget")
        elif verdict.name == "max_error_increase":
            self.add(v.name, check, status,
                     f"{task_metric} {figures.value:.4g} vs {reference} {figures.reference:.4g} "
                     f"({value:+.1%}), budget +{limit:.1%}", baseline=limit, measured=round(value, 6))
        else:
            if figures.higher_is_better is not False:  # fractions, in points as the tables show accuracy
                shown = f"{value * 100:+.2f} points, budget {limit * 100:g}"
            else:
                shown = f"{value:+.4g} ({task_metric.upper()} increase), budget {limit:g}"
            self.add(v.name, check, status, f"{task_metric} drop vs {reference} {shown}",
                     baseline=limit, measured=round(value, 6))


# The finding of each budget: ``budget:<what>``, as BUDGET_HINTS and the reports name it.
BUDGET_CHECKS = {"max_size_kb": "budget:size", "max_gzip_kb": "budget:gzip",
                 "max_accuracy_drop": "budget:accuracy_drop", "max_error_increase": "budget:error_increase",
                 "max_latency_ms": "budget:latency"}


RECIPE_FIELDS_NOT_COMPARED = ("name", "benchmark", "budgets")
UNSET = (None, [], {}, False)  # a recipe field at one of these equals the field's absence


def _at_stage_default(stage: Mapping[str, Any], key: str) -> bool:
    """Whether a stage's field holds its technique's declared default (a field added since a baseline
    was written, such as quantize's ``repair: off``, reads as unchanged)."""
    technique = TECHNIQUES.get(stage.get("kind")) if isinstance(stage.get("kind"), str) else None
    field = technique.Stage.model_fields.get(key) if technique is not None else None
    if field is None or field.is_required():
        return False
    default = field.get_default(call_default_factory=True)
    return stage[key] == (default.value if hasattr(default, "value") else default)


def recipe_differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Field paths where two resolved recipes differ, as ``path before -> after``."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        out = []
        for key in list(before) + [k for k in after if k not in before]:
            if not path and key in RECIPE_FIELDS_NOT_COMPARED:
                continue
            absent = [side for side in (before, after) if key not in side]
            present = before if key in before else after
            if absent and (present.get(key) in UNSET or _at_stage_default(present, key)):
                continue  # a field newer than one side, at its default on the other
            where = f"{path}.{key}" if path else str(key)
            out += recipe_differences(before.get(key), after.get(key), where)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            out += recipe_differences(b, a, f"{path}[{index}]")
        return out
    if before != after:
        return [f"{path} {json.dumps(before)} -> {json.dumps(after)}"]
    return []


def cpu_difference(report: Report, baseline: Report) -> str | None:
    """Why measured latencies of the two reports come from different CPUs, or None if the same.

    A ratio such as int8/float32 depends on the instructions a CPU has (an int8 model runs 3x faster
    than float32 with VNNI, and slower without it), so it is gated only on the baseline's own kind of CPU.
    """
    def machine(doc: Report) -> tuple[Any, Any, Any]:
        env, isa = doc.environment, doc.environment.get("isa")
        return str(env.get("cpu")), str(env.get("machine")), \
            [str(f) for f in isa] if isinstance(isa, list) else None

    (cpu, arch, isa), (b_cpu, b_arch, b_isa) = machine(report), machine(baseline)
    if (cpu, arch) != (b_cpu, b_arch):
        return f"baseline measured on {b_cpu} ({b_arch}), this report on {cpu} ({arch})"
    if isa is None or b_isa is None:
        return "the baseline or the report does not record the CPU's instruction sets"
    if list(isa) != list(b_isa):
        gone = sorted(set(b_isa) - set(isa))
        new = sorted(set(isa) - set(b_isa))
        return ("baseline measured on a CPU with other instruction sets ("
                + ", ".join([f"-{f}" for f in gone] + [f"+{f}" for f in new]) + ")")
    return None


def _result(report: Report, findings: list[Finding], baseline: Report | None = None) -> CheckResult:
    return CheckResult(name=str(report.name or "?"), findings=tuple(findings),
                       baseline_created=baseline.created_utc if baseline else None,
                       report_created=report.created_utc)


def compare(report: Report | Mapping[str, Any], baseline: Report | Mapping[str, Any],
            tolerances: Tolerances | None = None) -> CheckResult:
    """Compare ``report`` with ``baseline`` and check the recipe budgets.

    Args:
        report: the new report (a plain report.json dict is validated and converted first).
        baseline: the accepted report (or a :func:`make_baseline` trim of one).
        tolerances: defaults if None.

    Returns:
        A :class:`CheckResult` with one finding per compared figure.

    Raises:
        InputError: either is malformed (see :func:`edgeopt.report.validate_report`), the budgets do
            not validate, or the two describe different models, tasks or datasets.
    """
    report, baseline = as_report(report, "report"), as_report(baseline, "baseline")
    return _compare(report, baseline, tolerances, report_budgets(report))


def _compare(report: Report, baseline: Report, tolerances: Tolerances | None,
             budgets: Budgets | None) -> CheckResult:
    """:func:`compare` with the report's budgets already typed."""
    check_same_model(report, baseline)
    findings = _Comparer(report, baseline, tolerances or Tolerances(), budgets).run()
    return _result(report, findings, baseline)


def check_budgets(report: Report | Mapping[str, Any]) -> CheckResult:
    """Only the budgets and the report's own failures (no baseline): for a first run.

    Every variant is ``new``; failed variants, failed measurements' variants, failed verification
    checks and missed budgets are failures.
    """
    report = as_report(report, "report")
    return _check_budgets(report, report_budgets(report))


def _check_budgets(report: Report, budgets: Budgets | None) -> CheckResult:
    """:func:`check_budgets` with the report's budgets already typed."""
    return _result(report, _Comparer(report, None, Tolerances(), budgets).run())


# What to try when a variant misses a budget, by the budget it missed.
BUDGET_HINTS = {
    "budget:accuracy_drop": "try quantize repair: auto, a quantization-aware stage (--preset "
                            "prune-qat-int8), or export int16x8 or float16 for this model",
    "budget:error_increase": "try quantize repair: auto, a quantization-aware stage (--preset "
                             "prune-qat-int8), or export int16x8 or float16 for this model",
    "budget:size": "prune or cluster further, or quantize",
    "budget:gzip": "prune or cluster further, or quantize",
    "budget:latency": "quantize to int8, or run fewer channels",
}


def _budget_hint(report: Report, check: str) -> str | None:
    """What to try for a missed budget, given what the run already did."""
    if check in ("budget:accuracy_drop", "budget:error_increase"):
        stages = report.recipe.get("stages") or [] if isinstance(report.recipe, Mapping) else []
        kinds = [(s.get("kind"), s.get("mode")) for s in stages if isinstance(s, Mapping)]
        if ("quantize", "qat") in kinds:
            return ("the float32 export shows what the earlier stages cost: prune or cluster less, or "
                    "fine-tune longer; or export int16x8 or float16")
    return BUDGET_HINTS.get(check)


def _attempts(tried: list[Mapping[str, Any]]) -> str:
    """``name: metric`` of each repair attempt, as report.json records them."""
    shown = []
    for attempt in tried:
        value = finite(attempt.get("validation_metric"))
        shown.append(f"{attempt.get('name')}: {value:.4g}" if value is not None else str(attempt.get("name")))
    return ", ".join(shown)


class _Read(Enum):
    REPORT = "the report's recipe"


FROM_REPORT = _Read.REPORT  # judge_budgets' default: the budgets of the report's resolved recipe


def judge_budgets(report: Report, budgets: Budgets | None | _Read = FROM_REPORT) -> Report:
    """The report with every variant that misses one of ``budgets`` marked failed, its reason
    naming the budget, the figure and what to try: a variant that lost its accuracy is never ``ok``.

    ``budgets`` are the typed budgets of the recipe that made the report (``compress`` passes its
    ``recipe.budgets``; None: no budgets); by default they are read from the report's resolved
    recipe, as ``check`` reads them. The verdicts are :func:`check_budgets`' own (one judge for
    ``compress`` and ``check``); the figures stay in the variant, so every rendering shows what was
    measured beside the failure.
    """
    if budgets is FROM_REPORT:
        budgets = report_budgets(report)
    if budgets is None:
        return report
    missed: dict[str, list[Finding]] = {}
    for finding in _Comparer(report, None, Tolerances(), budgets).run():
        if finding.check.startswith("budget:") and finding.failing:
            missed.setdefault(finding.variant, []).append(finding)
    if not missed:
        return report
    variants = []
    for v in report.variants:
        if v.name in missed and v.ok:
            reasons = [f"over budget: {f.message}" + (f" on {f.target}" if f.target else "")
                       for f in missed[v.name]]
            hint = _budget_hint(report, missed[v.name][0].check)
            tried = (v.extra.get("repair") or {}).get("attempts") or []
            if tried and (v.extra.get("repair") or {}).get("kept"):
                hint = (f"the repair kept ({v.extra['repair']['kept']}) met the budget when it was chosen "
                        f"but not in this judgement; {hint or ''}")
            elif tried:
                hint = f"no repair met the budget ({_attempts(tried)} on the validation slice); {hint or ''}"
            worst = ((v.extra.get("diagnosis") or {}).get("layers") or [{}])[0].get("name")
            if worst:
                hint = f"diagnose ranks layer '{worst}' worst (report.json diagnosis); {hint or ''}"
            v = v.replace(status=Status.FAILED, reason="; ".join(reasons) + (f"; {hint}" if hint else ""))
        variants.append(v)
    return report.replace(variants=tuple(variants)).with_status()


def check(report: Report | str | Path, baseline_path: str | Path, tolerances: Tolerances | None = None,
          *, update: bool = False) -> CheckResult:
    """``edgeopt check``: compare a report with the baseline at ``baseline_path``, optionally accept it.

    Without ``update`` the baseline must exist. With ``update`` a missing baseline is no error (the
    report is checked against its budgets alone), and the report is written, trimmed by
    :func:`make_baseline`, to ``baseline_path`` when the report itself has no failures: no failed
    variant or verification check and no missed budget, whatever the comparison found (those are the
    changes being accepted). Otherwise the file is left as it was.

    Args:
        report: a Report, or the path of a report.json.
        baseline_path: the accepted report, e.g. ``models/<name>/baseline.json``.
        tolerances: defaults if None.
        update: accept the report as the new baseline.

    Returns:
        The comparison, with ``update`` saying whether the baseline was written or refused.

    Raises:
        InputError: a missing or invalid report or baseline, a baseline of another model.
        EnvironmentProblem: the baseline cannot be written.
    """
    shown = report if isinstance(report, (str, Path)) else "REPORT.json"
    report = load_report(report) if isinstance(report, (str, Path)) else as_report(report, "report")
    budgets = report_budgets(report)  # validated once, for the comparison and the update alike
    baseline_path = Path(baseline_path)
    if baseline_path.exists():
        result = _compare(report, load_report(baseline_path), tolerances, budgets)
        own = _check_budgets(report, budgets) if update else result
    elif update:
        result = own = _check_budgets(report, budgets)
    else:
        raise InputError(f"{baseline_path}: baseline not found; create it with "
                         f"edgeopt check {shown} --baseline {baseline_path} --update-baseline")
    if not update:
        return result
    if not own.passed:
        return replace(result, baseline_path=str(baseline_path), update=BaselineUpdate.REFUSED)
    try:
        write_text_atomic(baseline_path, baseline_json(report))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {baseline_path}: {exc.strerror or exc}") from None
    return replace(result, baseline_path=str(baseline_path), update=BaselineUpdate.WRITTEN)


# Fields kept in a baseline: everything compare() reads, nothing bulky (plot data, per-tensor stats).
_VARIANT_KEEP = ("name", "format", "path", "status", "reason", "size_bytes", "gzip_bytes", "params",
                 "sparsity", "metrics", "latency")
_INSPECT_KEEP = ("ops", "int8_op_coverage", "float_ops")
_TOP_KEEP = ("schema_version", "edgeopt_version", "created_utc", "name", "task", "recipe", "seed",
             "environment", "data", "status")


def make_baseline(report: Report | Mapping[str, Any]) -> Report:
    """A trimmed copy of ``report`` to commit as a baseline: still a valid schema-v1 report.

    Plot data (evaluation, per-tensor statistics, training histories) is dropped; everything
    :func:`compare` reads is kept.
    """
    data = json.loads(json.dumps(as_report(report).to_json()))  # a deep copy, detached from the source
    out = {k: data[k] for k in _TOP_KEEP if k in data}
    out["variants"] = []
    for v in data.get("variants") or []:
        trimmed = {k: v[k] for k in _VARIANT_KEEP if k in v}
        inspect = v.get("inspect") if isinstance(v.get("inspect"), dict) else {}
        trimmed["inspect"] = {k: inspect[k] for k in _INSPECT_KEEP if k in inspect}
        out["variants"].append(trimmed)
    out["checks"] = data.get("checks") or []
    return Report.from_json(out)


def baseline_json(report: Report | Mapping[str, Any]) -> str:
    """:func:`make_baseline` as stable, reviewable JSON text."""
    return json.dumps(make_baseline(report).to_json(), indent=2, allow_nan=False) + "\n"
