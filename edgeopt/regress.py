"""Compare a report with a baseline: the CI regression gate behind ``edgeopt check``. No TensorFlow.

:func:`compare` takes two report dicts (a baseline is a report, usually trimmed by
:func:`make_baseline`) and returns a :class:`CheckResult`: one :class:`Finding` per variant, target
and check, passes included, so CI systems can list every check as a test case (:meth:`to_junit`).

What is compared (tolerances in :class:`Tolerances`, overridable from a YAML/JSON file):

* size and gzip size of every variant: relative tolerance (bigger beyond it is a regression,
  smaller beyond it an improvement);
* every metric (accuracy, MAE, ...): absolute tolerance in the metric's unit, in its direction;
* weight sparsity (absolute) and int8 op coverage (absolute); a float op appearing in a variant that
  had none of that type is a regression (float fallback);
* latency as a RATIO: variant p50 / ``trained_float32`` p50 on the same target in the same report,
  compared with the same ratio in the baseline. On a shared CI machine absolute timings drift with
  load and hardware, but a variant and its reference measured minutes apart in one run drift
  together, so the ratio is stable while a real change in the variant (a float fallback, a slower
  kernel) moves it. The reference's own absolute latency is reported as a note, and fails only
  when ``latency_absolute_rel`` is set. A change of threads, delegate or provenance between
  baseline and report is a regression: the figures are no longer comparable;
* budgets from the report's resolved recipe (``budgets.max_size_kb``, ``max_accuracy_drop``,
  ``max_latency_ms: {target: ms}``), independent of the baseline;
* a failed variant, a failed latency measurement, a failed verification check, a variant or target
  missing from the report: failures. Variants or targets new in the report are notes.

A baseline from another model, task or dataset raises :class:`~edgeopt.errors.InputError` (exit 2).
"""

from __future__ import annotations

import copy
import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from edgeopt.documents import load_yaml, read_text
from edgeopt.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError
from edgeopt.recipe import Strict

PASS = "pass"
REGRESSION = "regression"
IMPROVEMENT = "improvement"
FAIL = "fail"
NOTE = "note"
NEW = "new"
FAILING = (REGRESSION, FAIL)
MARKS = {PASS: "✅", REGRESSION: "❌", FAIL: "❌", IMPROVEMENT: "⬆️", NOTE: "ℹ️", NEW: "🆕"}

REFERENCE = "trained_float32"
KB = 1024
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
    default_metric_abs: float = Field(0.0, ge=0, description="for metrics not in metric_abs")
    sparsity_abs: float = Field(0.01, ge=0)
    op_coverage_abs: float = Field(0.0, ge=0, description="int8_op_coverage")
    latency_ratio_rel: float = Field(
        0.15, ge=0, description="relative change of (variant p50 / reference p50) on the same target"
    )
    latency_field: Literal["min_ms", "p50_ms", "p90_ms", "mean_ms"] = Field(
        "min_ms", description="which timing forms the ratio; see docs/check.md for why min by default"
    )
    latency_reference: str = Field(REFERENCE, description="the variant latency ratios are taken against")
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
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = err["msg"].removeprefix("Value error, ")
        got = "" if err["type"] == "value_error" else f", got {err.get('input')!r}"
        raise InputError(f"{path}: {where or 'tolerances'}: {msg[:1].lower() + msg[1:]}{got}") from None


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


@dataclass
class CheckResult:
    """All findings of one comparison."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    baseline_created: str | None = None
    report_created: str | None = None

    @property
    def passed(self) -> bool:
        """No regression and no failure."""
        return not any(f.failing for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 when passed, else 1."""
        return EXIT_OK if self.passed else EXIT_CHECK_FAILED

    def counts(self) -> dict[str, int]:
        """Number of findings per status."""
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.status] = out.get(f.status, 0) + 1
        return out

    def summary(self) -> str:
        """One line: verdict and counts."""
        counts = self.counts()
        plural = {PASS: "passes", NEW: "new", FAIL: "failures"}
        parts = [f"{counts[s]} {s if counts[s] == 1 else plural.get(s, s + 's')}"
                 for s in (REGRESSION, FAIL, IMPROVEMENT, NEW, NOTE, PASS) if counts.get(s)]
        verdict = "PASSED" if self.passed else "FAILED"
        return f"edgeopt check {self.name}: {verdict} ({', '.join(parts) or 'nothing compared'})"

    def to_json(self) -> dict[str, Any]:
        """A machine-readable document (``edgeopt check --json``)."""
        return {"name": self.name, "passed": self.passed, "exit_code": self.exit_code,
                "counts": self.counts(), "baseline_created_utc": self.baseline_created,
                "report_created_utc": self.report_created,
                "findings": [{**asdict(f), "failing": f.failing} for f in self.findings]}

    def rows(self) -> list[list[str]]:
        """Rows for tables: status, variant, check, target, baseline, measured, message."""
        order = {REGRESSION: 0, FAIL: 0, IMPROVEMENT: 1, NEW: 2, NOTE: 3, PASS: 4}
        ranked = sorted(self.findings, key=lambda f: order.get(f.status, 5))
        return [[f.status, f.variant, f.check, f.target or "", _show(f.baseline), _show(f.measured),
                 f.message] for f in ranked]

    def to_table(self) -> str:
        """The terminal rendering: every finding, failures first, then the summary line."""
        from edgeopt.render import table

        headers = ["status", "variant", "check", "target", "baseline", "measured", "detail"]
        return table(headers, self.rows()) + "\n" + self.summary()

    def to_markdown(self) -> str:
        """Markdown for a CI job summary: verdict, one table, failures first."""
        from edgeopt.report import markdown_table

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


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _op_counts(ops: list[Any]) -> Counter[str]:
    """Op-type counts from inspect's ``float_ops`` (``{index, op}`` entries, or plain names)."""
    return Counter(str(o.get("op")) if isinstance(o, dict) else str(o) for o in ops)


def _show_ops(counts: Counter[str]) -> str:
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(counts.items())) or "(none)"


def _latency_value(variant: dict[str, Any] | None, target: str, fld: str) -> float | None:
    """A successful latency figure of ``variant`` on ``target``, else None."""
    lat = (variant or {}).get("latency")
    entry = lat.get(target) if isinstance(lat, dict) else None
    if not isinstance(entry, dict) or entry.get("status", "ok") != "ok":
        return None
    return _num(entry.get(fld))


def _identity(report: dict[str, Any]) -> dict[str, Any]:
    recipe = report.get("recipe") if isinstance(report.get("recipe"), dict) else {}
    return {"name": report.get("name"), "model": recipe.get("model"), "task": report.get("task"),
            "data": recipe.get("data") or (report.get("data") or {}).get("name")}


def check_same_model(report: dict[str, Any], baseline: dict[str, Any]) -> None:
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
    def __init__(self, report: dict[str, Any], baseline: dict[str, Any], tol: Tolerances):
        self.report, self.baseline, self.tol = report, baseline, tol
        self.findings: list[Finding] = []
        self.r_vars = {v["name"]: v for v in report.get("variants") or []}
        self.b_vars = {v["name"]: v for v in baseline.get("variants") or []}
        self.other_cpu = cpu_difference(report, baseline)

    def add(self, variant: str, check: str, status: str, message: str, **kw: Any) -> None:
        self.findings.append(Finding(variant=variant, check=check, status=status, message=message, **kw))

    def enabled(self, check: str) -> bool:
        return check not in self.tol.skip

    # -- relative and absolute comparisons ------------------------------------------------------------

    def relative(self, variant: str, check: str, label: str, base: Any, now: Any, rel: float,
                 lower_is_better: bool = True, unit: str = "", target: str | None = None) -> None:
        b, n = _num(base), _num(now)
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
                 higher_is_better: bool, unit: str = "") -> None:
        b, n = _num(base), _num(now)
        tol = f"±{tol_abs:g}{unit}"
        if b is None and n is None:
            return
        if n is None:
            self.add(variant, check, FAIL, f"{label} missing or not a number in the report",
                     baseline=base, measured=now, tolerance=tol)
            return
        if b is None:
            self.add(variant, check, NOTE, f"{label} not in the baseline", measured=n, tolerance=tol)
            return
        delta = n - b
        # a hair of slack so that a change of exactly the tolerance passes despite float rounding
        eps = 1e-9 * max(1.0, abs(b))
        worse = delta < -tol_abs - eps if higher_is_better else delta > tol_abs + eps
        better = delta > tol_abs + eps if higher_is_better else delta < -tol_abs - eps
        status = REGRESSION if worse else IMPROVEMENT if better else PASS
        self.add(variant, check, status, f"{label} {_show(b)}{unit} -> {_show(n)}{unit} ({delta:+.4g})",
                 baseline=b, measured=n, tolerance=tol)

    # -- per variant ---------------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        for name, b in self.b_vars.items():
            r = self.r_vars.get(name)
            if r is None:
                self.add(name, "variant", FAIL, "variant in the baseline is missing from the report")
                continue
            if r.get("status") != "ok":
                self.add(name, "variant", FAIL, f"variant failed: {r.get('reason') or 'no reason given'}")
                continue
            if b.get("status") != "ok":
                self.add(name, "variant", NOTE, "variant failed in the baseline; nothing to compare")
                continue
            self.variant(name, r, b)
        for name in self.r_vars:
            if name not in self.b_vars:
                r = self.r_vars[name]
                if r.get("status") != "ok":
                    self.add(name, "variant", FAIL, f"variant failed: {r.get('reason') or 'no reason given'}")
                else:
                    self.add(name, "variant", NEW, "variant not in the baseline (refresh it with "
                                                   "--update-baseline)")
        for c in self.report.get("checks") or []:
            if isinstance(c, dict) and c.get("status") not in ("ok", None):
                self.add(str(c.get("variant", "*")), f"verify:{c.get('check', '?')}", FAIL,
                         str(c.get("message") or "verification check failed"),
                         baseline=c.get("expected"), measured=c.get("measured"))
        if self.enabled("recipe"):
            self.recipe()
        self.budgets()
        return self.findings

    def recipe(self) -> None:
        """Figures are comparable only between runs of the same recipe (benchmark settings aside)."""
        mine, theirs = self.report.get("recipe"), self.baseline.get("recipe")
        if not isinstance(mine, dict) or not isinstance(theirs, dict) or theirs is mine:
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

    def variant(self, name: str, r: dict[str, Any], b: dict[str, Any]) -> None:
        tol = self.tol
        is_tflite = r.get("format") != "keras"
        if is_tflite and self.enabled("size"):
            self.relative(name, "size", "size", b.get("size_bytes"), r.get("size_bytes"), tol.size_rel,
                          unit=" B")
        if is_tflite and self.enabled("gzip"):
            self.relative(name, "gzip", "gzip size", b.get("gzip_bytes"), r.get("gzip_bytes"), tol.gzip_rel,
                          unit=" B")
        if self.enabled("metric"):
            r_metrics = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
            for mname, bm in (b.get("metrics") or {}).items():
                if not isinstance(bm, dict):
                    continue
                rm = r_metrics.get(mname)
                higher = bool(bm.get("higher_is_better", mname == "accuracy"))
                self.absolute(name, mname, mname, bm.get("value"),
                              rm.get("value") if isinstance(rm, dict) else None,
                              tol.metric_abs.get(mname, tol.default_metric_abs), higher)
        if not is_tflite:
            return
        if self.enabled("sparsity"):
            self.absolute(name, "sparsity", "weight sparsity", b.get("sparsity"), r.get("sparsity"),
                          tol.sparsity_abs, higher_is_better=True)
        r_insp = r.get("inspect") if isinstance(r.get("inspect"), dict) else {}
        b_insp = b.get("inspect") if isinstance(b.get("inspect"), dict) else {}
        if self.enabled("op_coverage"):
            self.absolute(name, "int8_op_coverage", "int8 op coverage", b_insp.get("int8_op_coverage"),
                          r_insp.get("int8_op_coverage"), tol.op_coverage_abs, higher_is_better=True)
        if self.enabled("float_ops") and isinstance(b_insp.get("float_ops"), list):
            now = r_insp.get("float_ops")
            if not isinstance(now, list):
                self.add(name, "float_ops", FAIL, "float_ops missing from the report's inspection")
            else:
                before, after = _op_counts(b_insp["float_ops"]), _op_counts(now)
                added = after - before  # more ops of a type in float than before: a fallback
                gone = before - after
                shown = {"baseline": _show_ops(before), "measured": _show_ops(after)}
                if added:
                    self.add(name, "float_ops", REGRESSION,
                             f"float fallback: now runs {_show_ops(added)} in float", **shown)
                elif gone:
                    self.add(name, "float_ops", IMPROVEMENT, f"no longer in float: {_show_ops(gone)}",
                             **shown)
                else:
                    self.add(name, "float_ops", PASS, "same float ops", **shown)
        if self.enabled("latency") or self.enabled("setup"):
            self.latencies(name, r, b)

    def latencies(self, name: str, r: dict[str, Any], b: dict[str, Any]) -> None:
        tol = self.tol
        fld = tol.latency_field
        ref_name = tol.latency_reference
        r_lat = r.get("latency") if isinstance(r.get("latency"), dict) else {}
        b_lat = b.get("latency") if isinstance(b.get("latency"), dict) else {}
        for target, be in b_lat.items():
            if not isinstance(be, dict) or be.get("status", "ok") != "ok":
                continue
            re_ = r_lat.get(target)
            if not isinstance(re_, dict):
                self.add(name, "latency", FAIL, "target in the baseline was not measured in the report",
                         target=target)
                continue
            if re_.get("status", "ok") != "ok":
                self.add(name, "latency", FAIL, f"measurement failed: {re_.get('reason') or 'no reason'}",
                         target=target)
                continue
            if self.enabled("setup"):
                self.setup(name, target, re_, be)
            if not self.enabled("latency"):
                continue
            now, base = _num(re_.get(fld)), _num(be.get(fld))
            if now is None or now <= 0:
                self.add(name, "latency", FAIL, f"{fld} missing, zero or not a number in the report",
                         target=target, measured=re_.get(fld))
                continue
            if base is None or base <= 0:
                self.add(name, "latency", FAIL, f"baseline {fld} missing, zero or negative: refresh the "
                         "baseline", target=target, baseline=be.get(fld), measured=now)
                continue
            if name == ref_name:
                self.reference_latency(name, target, base, now)
                continue
            r_ref = _latency_value(self.r_vars.get(ref_name), target, fld)
            b_ref = _latency_value(self.b_vars.get(ref_name), target, fld)
            if r_ref is None or r_ref <= 0 or b_ref is None or b_ref <= 0:
                side = "report" if r_ref is None or r_ref <= 0 else "baseline"
                self.add(name, "latency", FAIL, f"no positive {ref_name} {fld} on {target} in the {side}: "
                         "cannot form the latency ratio", target=target)
                continue
            r_ratio, b_ratio = now / r_ref, base / b_ref
            change = r_ratio / b_ratio - 1
            worse, better = change > tol.latency_ratio_rel, change < -tol.latency_ratio_rel
            status = REGRESSION if worse else IMPROVEMENT if better else PASS
            other_cpu = self.other_cpu if re_.get("provenance", "").startswith("measured") else None
            if other_cpu:
                status = NOTE  # an int8/float ratio depends on the CPU's instructions (VNNI, AVX-512)
            self.add(name, "latency", status,
                     f"{fld} / {ref_name}: {b_ratio:.3f} -> {r_ratio:.3f} ({100 * change:+.1f}%; "
                     f"{now:.4g} ms vs reference {r_ref:.4g} ms)"
                     + (f"; not gated: {other_cpu}" if other_cpu else ""),
                     target=target, baseline=round(b_ratio, 4), measured=round(r_ratio, 4),
                     tolerance=f"ratio ±{100 * tol.latency_ratio_rel:g}%")
        for target in r_lat:
            if target not in b_lat:
                self.add(name, "latency", NEW, "target not in the baseline", target=target)

    def reference_latency(self, name: str, target: str, base: float | None, now: float) -> None:
        tol = self.tol
        if base is None:
            self.add(name, "latency", NOTE, "reference latency not in the baseline", target=target,
                     measured=now)
            return
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

    def setup(self, name: str, target: str, re_: dict[str, Any], be: dict[str, Any]) -> None:
        changed = []
        for key in ("provenance", "threads", "delegate"):
            if key in be and key in re_ and be[key] != re_[key]:
                changed.append(f"{key} {be[key]} -> {re_[key]}")
        if changed:
            self.add(name, "setup", REGRESSION, "benchmark setup changed, timings not comparable: "
                     + "; ".join(changed), target=target)
        elif be.get("runtime") and re_.get("runtime") and be["runtime"] != re_["runtime"]:
            self.add(name, "setup", NOTE, f"runtime {be['runtime']} -> {re_['runtime']}", target=target)

    # -- budgets ---------------------------------------------------------------------------------------

    def budgets(self) -> None:
        recipe = self.report.get("recipe") if isinstance(self.report.get("recipe"), dict) else {}
        budgets = recipe.get("budgets")
        if not budgets or not self.enabled("budget"):
            return
        if not isinstance(budgets, dict):
            self.add("*", "budget", FAIL, "recipe.budgets is not a mapping")
            return
        names = budgets.get("variants") or [n for n, v in self.r_vars.items()
                                            if v.get("format") != "keras" and n != REFERENCE]
        task_metric = "mae" if self.report.get("task") == "regression" else "accuracy"
        ref = self.r_vars.get(REFERENCE)
        for name in names:
            v = self.r_vars.get(name)
            if v is None:
                self.add(name, "budget", FAIL, "budgeted variant is missing from the report")
                continue
            if v.get("status") != "ok":
                self.add(name, "budget", FAIL, f"budgeted variant failed: {v.get('reason')}")
                continue
            max_kb = _num(budgets.get("max_size_kb"))
            if max_kb is not None:
                kb = _num(v.get("size_bytes"))
                kb = kb / KB if kb is not None else None
                ok = kb is not None and kb <= max_kb
                self.add(name, "budget:size", PASS if ok else FAIL,
                         f"size {_show(kb)} KB (budget {max_kb:g} KB)", baseline=max_kb, measured=kb)
            max_drop = _num(budgets.get("max_accuracy_drop"))
            if max_drop is not None:
                mv = _num(((v.get("metrics") or {}).get(task_metric) or {}).get("value"))
                rv = _num((((ref or {}).get("metrics") or {}).get(task_metric) or {}).get("value"))
                if mv is None or rv is None:
                    self.add(name, "budget:accuracy_drop", FAIL,
                             f"{task_metric} of {name} or {REFERENCE} missing: cannot check the budget")
                else:
                    drop = rv - mv if task_metric == "accuracy" else mv - rv
                    ok = drop <= max_drop + 1e-12
                    unit = " (fraction)" if task_metric == "accuracy" else " (MAE increase)"
                    self.add(name, "budget:accuracy_drop", PASS if ok else FAIL,
                             f"{task_metric} drop vs {REFERENCE} {drop:+.4g}{unit}, budget {max_drop:g}",
                             baseline=max_drop, measured=round(drop, 6))
            max_lat = budgets.get("max_latency_ms") or {}
            if isinstance(max_lat, dict):
                for target, limit in max_lat.items():
                    entry = (v.get("latency") or {}).get(target)
                    limit_ms = _num(limit)
                    p50 = _num(entry.get("p50_ms")) if isinstance(entry, dict) and \
                        entry.get("status", "ok") == "ok" else None
                    if limit_ms is None:
                        self.add(name, "budget:latency", FAIL, f"budget for {target} is not a number",
                                 target=target)
                    elif p50 is None:
                        self.add(name, "budget:latency", FAIL, "target not measured (or failed): "
                                 "add it to benchmark.targets", target=target)
                    else:
                        prov = entry.get("provenance", "?")
                        self.add(name, "budget:latency", PASS if p50 <= limit_ms else FAIL,
                                 f"p50 {p50:.4g} ms ({prov}), budget {limit_ms:g} ms", target=target,
                                 baseline=limit_ms, measured=p50)


RECIPE_FIELDS_NOT_COMPARED = ("name", "benchmark", "budgets")


def recipe_differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Field paths where two resolved recipes differ, as ``path before -> after``."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in list(before) + [k for k in after if k not in before]:
            if not path and key in RECIPE_FIELDS_NOT_COMPARED:
                continue
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


def cpu_difference(report: dict[str, Any], baseline: dict[str, Any]) -> str | None:
    """Why measured latencies of the two reports come from different CPUs, or None if the same.

    A ratio such as int8/float32 depends on the instructions a CPU has (an int8 model runs 3x faster
    than float32 with VNNI, and slower without it), so it is gated only on the baseline's own kind of CPU.
    """
    def machine(doc: dict[str, Any]) -> tuple[Any, Any, Any]:
        env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
        isa = env.get("isa")
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


def compare(
    report: dict[str, Any], baseline: dict[str, Any], tolerances: Tolerances | None = None
) -> CheckResult:
    """Compare ``report`` with ``baseline`` (both parsed report dicts) and check the recipe budgets.

    Args:
        report: the new report.
        baseline: the accepted report (or a :func:`make_baseline` trim of one).
        tolerances: defaults if None.

    Returns:
        A :class:`CheckResult` with one finding per compared figure.

    Raises:
        InputError: either is malformed (see :func:`edgeopt.report.validate_report`), or the two
            describe different models, tasks or datasets.
    """
    from edgeopt.report import validate_report

    validate_report(report, "report")
    validate_report(baseline, "baseline")
    check_same_model(report, baseline)
    findings = _Comparer(report, baseline, tolerances or Tolerances()).run()
    return CheckResult(name=str(report.get("name") or "?"), findings=findings,
                       baseline_created=baseline.get("created_utc"), report_created=report.get("created_utc"))


def check_budgets(report: dict[str, Any]) -> CheckResult:
    """Only the budgets and the report's own failures (no baseline): for a first run."""
    return compare(report, {**report, "variants": []}, Tolerances())


# Fields kept in a baseline: everything compare() reads, nothing bulky (plot data, per-tensor stats).
_VARIANT_KEEP = ("name", "format", "path", "status", "reason", "size_bytes", "gzip_bytes", "params",
                 "sparsity", "metrics", "latency")
_INSPECT_KEEP = ("ops", "int8_op_coverage", "float_ops")
_TOP_KEEP = ("schema_version", "edgeopt_version", "created_utc", "name", "task", "recipe", "seed",
             "environment", "data", "status")


def make_baseline(report: dict[str, Any]) -> dict[str, Any]:
    """A trimmed copy of ``report`` to commit as a baseline: still a valid schema-v1 report.

    Plot data (evaluation, per-tensor statistics, training histories) is dropped; everything
    :func:`compare` reads is kept.
    """
    out = {k: copy.deepcopy(report[k]) for k in _TOP_KEEP if k in report}
    out["variants"] = []
    for v in report.get("variants") or []:
        trimmed = {k: copy.deepcopy(v[k]) for k in _VARIANT_KEEP if k in v}
        inspect = v.get("inspect") if isinstance(v.get("inspect"), dict) else {}
        trimmed["inspect"] = {k: copy.deepcopy(inspect[k]) for k in _INSPECT_KEEP if k in inspect}
        out["variants"].append(trimmed)
    out["checks"] = copy.deepcopy(report.get("checks") or [])
    return out


def baseline_json(report: dict[str, Any]) -> str:
    """:func:`make_baseline` as stable, reviewable JSON text."""
    return json.dumps(make_baseline(report), indent=2, allow_nan=False) + "\n"
