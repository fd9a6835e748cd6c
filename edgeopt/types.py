"""The typed results of edgeopt: what a run produces, what ``check`` decides. No TensorFlow.

Frozen dataclasses and string enums over the report.json schema (docs/report-schema.md). Every
class reads its JSON object with ``from_json`` and writes it back with ``to_json``; the two
round-trip without loss: keys this edgeopt does not know are kept in ``extra`` and written back,
and optional keys that were absent stay absent. Enum members are ``str`` subclasses, so they
compare and serialise as the strings the schema holds (``Status.OK == "ok"``).

The rules that several readers need live here once: which variant is the reference
(:data:`REFERENCES`), which metric a task is judged by and in which direction
(:meth:`Report.primary_metric`, :meth:`Metric.better`), and when a figure counts
(:func:`finite`, :meth:`LatencyEntry.value`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

# The reference, the variant every ratio and drop is taken against; a report holds one of them.
REFERENCE = "trained_float32"  # the float32 .tflite of the model edgeopt trained
ORIGINAL = "original"  # the float32 .tflite of the user's saved model as given, before any training
REFERENCES = (REFERENCE, ORIGINAL)
KERAS_VARIANT = "keras_float"  # the trained Keras model, for reference only
SCHEMA_VERSION = 1


class Status(StrEnum):
    """A variant's, a latency entry's or a whole report's outcome."""

    OK = "ok"
    FAILED = "failed"


class CheckStatus(StrEnum):
    """A verification check's outcome (the schema spells failure ``fail`` here)."""

    OK = "ok"
    FAIL = "fail"


class Provenance(StrEnum):
    """Where a latency figure comes from. Never mixed in one column."""

    MEASURED = "measured"  # real hardware: this machine or a board over SSH
    EMULATED = "emulated"  # qemu-user: the instructions are the board's, the timings are not
    ESTIMATED = "estimated"  # the cost model


class Format(StrEnum):
    """A variant's format: the Keras model or a ``.tflite`` export format."""

    KERAS = "keras"
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT16X8 = "int16x8"
    INT4 = "int4"  # int4 weights, float activations (the LiteRT quantizer's int4 recipes)


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    MULTI_OUTPUT = "multi-output"  # several named outputs, each with its own task (report.data.outputs)


# The metric a task is judged by, and the metrics' directions and units.
TASK_METRIC = {Task.CLASSIFICATION: "accuracy", Task.REGRESSION: "mae"}
HIGHER_IS_BETTER = {"accuracy": True, "top_k_accuracy": True, "mae": False, "rmse": False}
FRACTIONS = ("accuracy", "top_k_accuracy")  # metrics that are shares of the test split (unit "fraction")
OUTPUT_SEPARATOR = "/"  # a metric of one of several outputs: ``accuracy/<output>``, ``mae/<output>``


def base_metric(name: str) -> str:
    """The metric without its output: ``accuracy`` for ``accuracy/label`` (and for ``accuracy``)."""
    return name.split(OUTPUT_SEPARATOR, 1)[0]


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# -- the lossless mapping between a JSON object and a dataclass --------------------------------------


def _read(cls, source: Mapping[str, Any], /, **converted: Any):
    """``cls`` from ``source``: known keys to fields (``converted`` overrides them), the rest to extra."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _BOOKKEEPING]
    known = {name: converted.get(name, source.get(name)) for name in names}
    extra = {k: v for k, v in source.items() if k not in names}
    return cls(**known, extra=extra, keys=tuple(source))


def _write(obj, /, **converted: Any) -> dict[str, Any]:
    """The JSON object of ``obj``, keys in the order read (else schema order), absent keys left out."""
    names = [f.name for f in dataclasses.fields(obj) if f.name not in _BOOKKEEPING]
    order = obj.keys if obj.keys is not None else (*names, *obj.extra)
    out: dict[str, Any] = {}
    for key in order:
        if key in obj.extra:
            out[key] = obj.extra[key]
        elif key in names:
            value = converted.get(key, getattr(obj, key))
            if not (key in obj.OMIT_IF_NONE and value is None):
                out[key] = value.value if isinstance(value, StrEnum) else value
    return out


_BOOKKEEPING = ("extra", "keys")


class _Json:
    """Shared by every result type: ``extra`` keeps unknown keys, ``keys`` the order (and presence) read."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]):
        return _read(cls, data)

    def to_json(self) -> dict[str, Any]:
        return _write(self)

    def replace(self, **changes: Any):
        """A copy with ``changes`` (a field given here is written even if the source lacked it)."""
        keys = self.keys if self.keys is None else (*self.keys, *(k for k in changes if k not in self.keys))
        return dataclasses.replace(self, keys=keys, **changes)


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric(_Json):
    """A figure with its direction, unit and provenance (``measured: LiteRT ... on the test split``)."""

    value: float | None
    unit: str = ""
    higher_is_better: bool = True
    provenance: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def of(cls, name: str, value: float, provenance: str, unit: str = "") -> Metric:
        higher = HIGHER_IS_BETTER.get(base_metric(name), True)
        return cls(value=float(value), unit=unit or ("fraction" if base_metric(name) in FRACTIONS else ""),
                   higher_is_better=higher, provenance=provenance)

    @classmethod
    def read(cls, name: str, data: Mapping[str, Any]) -> Metric:
        """``from_json`` of the metric called ``name``: one that does not state its direction gets its
        name's (``mae`` lower is better); written back, the key stays absent."""
        metric = cls.from_json(data)
        if metric.higher_is_better is None:
            higher = HIGHER_IS_BETTER.get(base_metric(name), True)
            metric = dataclasses.replace(metric, higher_is_better=higher)
        return metric

    @property
    def number(self) -> float | None:
        return finite(self.value)

    def drop(self, reference: Metric) -> float | None:
        """How much worse than ``reference`` (positive: worse), in the metric's unit."""
        mine, theirs = self.number, reference.number
        if mine is None or theirs is None:
            return None
        return theirs - mine if self.higher_is_better else mine - theirs

    def better(self, other: Metric) -> bool:
        """Whether this figure is strictly better than ``other``'s."""
        drop = self.drop(other)
        return drop is not None and drop < 0


@dataclass(frozen=True)
class LatencyEntry(_Json):
    """One latency measurement (or estimate) of one file on one target, with its provenance."""

    provenance: str = Provenance.MEASURED
    threads: int | None = None
    runs: int | None = None
    warmup: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    cv: float | None = None
    init_ms: float | None = None
    first_invoke_ms: float | None = None
    peak_rss_mb: float | None = None
    runtime: str | None = None
    delegate: str | None = None
    cpu: str | None = None
    governor: str | None = None
    status: str = Status.OK
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def value(self, name: str = "p50_ms") -> float | None:
        """A timing field's value when the measurement succeeded, else None."""
        if not self.ok:
            return None
        return finite(getattr(self, name) if name in self.__dataclass_fields__ else self.extra.get(name))

    @classmethod
    def failed(cls, reason: str, *, provenance: str = Provenance.MEASURED, threads: int | None = 1,
               delegate: str | None = None, runtime: str | None = None,
               cpu: str | None = None) -> LatencyEntry:
        """An entry for a measurement that could not be made: timings None, one-line reason."""
        return cls(provenance=provenance, threads=threads, runs=0, warmup=0, runtime=runtime,
                   delegate=delegate, cpu=cpu, status=Status.FAILED, reason=" ".join(str(reason).split()))


@dataclass(frozen=True)
class Variant(_Json):
    """One model the run produced: the Keras reference or a ``.tflite``, measured."""

    name: str
    format: str = Format.FLOAT32
    path: str | None = None
    status: str = Status.OK
    reason: str | None = None
    note: str | None = None
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    params: int | None = None
    sparsity: float | None = None
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    latency: Mapping[str, LatencyEntry] = field(default_factory=dict)
    inspect: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"note"})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        metrics = {k: Metric.read(k, m) for k, m in (data.get("metrics") or {}).items()}
        latency = {k: LatencyEntry.from_json(e) for k, e in (data.get("latency") or {}).items()}
        return _read(cls, data, metrics=metrics if "metrics" in data else {},
                     latency=latency if "latency" in data else {},
                     inspect=data.get("inspect") or {}, evaluation=data.get("evaluation") or {})

    def to_json(self) -> dict[str, Any]:
        return _write(self, metrics={k: m.to_json() for k, m in self.metrics.items()},
                      latency={k: e.to_json() for k, e in self.latency.items()})

    @classmethod
    def failed(cls, name: str, fmt: str, reason: str) -> Variant:
        """A row for an export that could not be made."""
        return cls(name=name, format=fmt, status=Status.FAILED, reason=" ".join(reason.split()))

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def is_tflite(self) -> bool:
        return self.format != Format.KERAS

    @property
    def is_export(self) -> bool:
        """A compressed ``.tflite`` export (not the Keras model, not the reference)."""
        return self.is_tflite and self.name not in REFERENCES

    def metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)

    def float_op_names(self) -> list[str]:
        """The float ops its inspection found, by op name, sorted and without repeats (an op in the
        inspection is a dict with ``op``, or its plain name in an older report)."""
        ops = self.inspect.get("float_ops") or []
        return sorted({str(op.get("op", op)) if isinstance(op, dict) else str(op) for op in ops})


@dataclass(frozen=True)
class StageOutcome(_Json):
    """What one stage achieved against what it was asked for, and which layers it left alone."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    history: Mapping[str, list] = field(default_factory=dict)
    achieved: Mapping[str, Any] = field(default_factory=dict)
    skipped_layers: Mapping[str, int] = field(default_factory=dict)
    summary: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Check(_Json):
    """A verification: what the recipe asked for versus what the ``.tflite`` holds."""

    variant: str
    check: str
    expected: Any = None
    measured: Any = None
    status: str = CheckStatus.OK
    message: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.status == CheckStatus.OK


@dataclass(frozen=True)
class Report(_Json):
    """A whole run: the canonical content of report.json."""

    schema_version: int = SCHEMA_VERSION
    edgeopt_version: str | None = None
    created_utc: str | None = None
    name: str | None = None
    task: str | None = None
    recipe: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[StageOutcome, ...] = ()
    variants: tuple[Variant, ...] = ()
    checks: tuple[Check, ...] = ()
    status: str = Status.OK
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """A Report from a parsed report.json (validate it first: :func:`edgeopt.report.parse_report`)."""
        return _read(cls, data,
                     stages=tuple(StageOutcome.from_json(s) for s in data.get("stages") or ()),
                     variants=tuple(Variant.from_json(v) for v in data.get("variants") or ()),
                     checks=tuple(Check.from_json(c) for c in data.get("checks") or ()),
                     recipe=data.get("recipe") or {}, environment=data.get("environment") or {},
                     data=data.get("data") or {}, training=data.get("training") or {})

    def to_json(self) -> dict[str, Any]:
        return _write(self, stages=[s.to_json() for s in self.stages],
                      variants=[v.to_json() for v in self.variants],
                      checks=[c.to_json() for c in self.checks])

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    @property
    def reference(self) -> Variant | None:
        """The variant every ratio and drop is taken against: ``trained_float32`` when edgeopt trained
        the model, ``original`` when it is the user's saved model (converted before any training)."""
        return next((v for v in self.variants if v.name in REFERENCES), None)

    @property
    def reference_name(self) -> str:
        """The reference variant's name, for labels (``trained_float32`` when there is none)."""
        return self.reference.name if self.reference is not None else REFERENCE

    def primary_metric(self) -> str:
        """The metric this report's task is judged by (falls back to what the variants hold).

        A multi-output report is judged by its first output's task metric (``accuracy/<output>`` or
        ``mae/<output>``), recorded as ``data.primary_metric``."""
        if self.task in TASK_METRIC:
            return TASK_METRIC[Task(self.task)]
        recorded = self.data.get("primary_metric") if isinstance(self.data, Mapping) else None
        if isinstance(recorded, str) and recorded:
            return recorded
        for v in self.variants:
            for name in HIGHER_IS_BETTER:
                if name in v.metrics:
                    return name
            for name in v.metrics:  # per output: the first task metric of any output
                if base_metric(name) in TASK_METRIC.values():
                    return name
        return "accuracy"

    def targets(self) -> list[str]:
        """Every latency target in the report, in first-seen order."""
        seen: list[str] = []
        for v in self.variants:
            seen += [t for t in v.latency if t not in seen]
        return seen

    def failures(self) -> list[str]:
        """One line per failed check, failed variant and failed measurement: why ``status`` is failed."""
        lines = [c.message for c in self.checks if not c.ok]
        lines += [f"{v.name}: {v.reason}" for v in self.variants if not v.ok]
        lines += sorted({f"{target}: {entry.reason}" for v in self.variants
                         for target, entry in v.latency.items() if not entry.ok})
        return lines

    def with_status(self) -> Report:
        """This report with ``status`` worked out from its variants, latency entries and checks."""
        failed = (any(not v.ok for v in self.variants) or any(not c.ok for c in self.checks)
                  or any(not e.ok for v in self.variants for e in v.latency.values()))
        return self.replace(status=Status.FAILED if failed else Status.OK)
