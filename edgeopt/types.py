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
import functools
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
    """A variant's format: the Keras model or a ``.tflite`` export format, one member per row of the
    table of export formats (:data:`edgeopt.formats.FORMATS`; tests/unit/test_formats_table.py keeps
    the two equal, so a new row without its member here fails the suite)."""

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


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class LatencyKey:
    """Which latency entry of a variant: a benchmark ``target`` and its ``threads``.

    ``threads`` is None for the run's first thread count (the entry records which count that was),
    and N for each further one. report.json spells a key as a string (docs/report-schema.md): the
    bare target for the first thread count, ``TARGET#Nt`` for the others (``local``, ``local#4t``);
    :meth:`parse` and ``str`` convert at that boundary, and code reads ``target`` and ``threads``.
    A key compares equal to (and hashes as) its report.json spelling, so ``variant.latency["local"]``
    still reads an entry; keys sort by target, the first thread count first, then by thread count.
    """

    target: str
    threads: int | None = None

    SEPARATOR: ClassVar[str] = "#"  # appears in no target (edgeopt.bench.parse_target refuses it)

    def __post_init__(self) -> None:
        if not self.target or self.SEPARATOR in self.target:
            raise ValueError(f"latency key: target {self.target!r} must be non-empty and without "
                             f"{self.SEPARATOR!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"latency key: threads must be a positive integer or None, got {self.threads!r}")

    @classmethod
    def of(cls, target: str, threads: int, first: int) -> LatencyKey:
        """The key of a measurement on ``target`` with ``threads``, in a run whose first is ``first``."""
        return cls(target, None if threads == first else threads)

    @classmethod
    def parse(cls, text: str) -> LatencyKey:
        """A key from its report.json spelling: ``local`` or ``local#4t``.

        Raises:
            ValueError: not a target, nor ``TARGET#Nt`` with N a positive integer.
        """
        target, sep, rest = str(text).partition(cls.SEPARATOR)
        if not sep:
            return cls(target)
        count = rest.removesuffix("t")
        if not rest.endswith("t") or not count.isdigit() or count.startswith("0"):
            raise ValueError(f"latency key {text!r}: expected TARGET or TARGET#Nt (e.g. local#4t)")
        return cls(target, int(count))

    @property
    def first(self) -> bool:
        """Whether this is the run's first thread count (the bare target in report.json)."""
        return self.threads is None

    def __str__(self) -> str:
        return self.target if self.threads is None else f"{self.target}{self.SEPARATOR}{self.threads}t"

    def _order(self) -> tuple[str, int]:
        return self.target, 0 if self.threads is None else self.threads

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LatencyKey):
            return self._order() == other._order()
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, LatencyKey):
            return self._order() < other._order()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


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


# -- the inspection of a .tflite (edgeopt.inspect reads it; these types carry it) ----------------------


@dataclass(frozen=True)
class Quantization(_Json):
    """A tensor's quantization parameters as an inspection records them: a quantized value ``q`` means
    ``(q - zero_point) * scale``.

    Per tensor: one ``scale`` and one ``zero_point``. Per channel: an input's or output's lists of
    scales and zero points along ``quantized_dimension``; a stored tensor's (``per_tensor``) records only
    how many channels (``per_channel``) and along which dimension. Read from JSON, the keys present are
    the keys written back.
    """

    scale: float | list[float] | None = None
    zero_point: int | list[int] | None = None
    quantized_dimension: int | None = None
    per_channel: int | None = None  # a stored tensor's count of per-channel scales (its scales not listed)
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def of_tensor(cls, scale: float, zero_point: int) -> Quantization:
        """One scale and one zero point for the whole tensor: written ``{scale, zero_point}``."""
        return cls(scale=float(scale), zero_point=int(zero_point), keys=("scale", "zero_point"))

    @classmethod
    def of_channels(cls, scale: list[float], zero_point: list[int], quantized_dimension: int) -> Quantization:
        """A scale and a zero point per channel along ``quantized_dimension``, listed."""
        return cls(scale=[float(s) for s in scale], zero_point=[int(z) for z in zero_point],
                   quantized_dimension=int(quantized_dimension),
                   keys=("scale", "zero_point", "quantized_dimension"))

    @classmethod
    def counted(cls, channels: int, quantized_dimension: int) -> Quantization:
        """Per-channel parameters recorded by their count only (a stored tensor's)."""
        return cls(per_channel=int(channels), quantized_dimension=int(quantized_dimension),
                   keys=("per_channel", "quantized_dimension"))

    @classmethod
    def read(cls, data: Any) -> Quantization | None:
        """The parameters in ``data`` (None for none, or for an entry that is not an object)."""
        return cls.from_json(data) if isinstance(data, Mapping) else None

    @property
    def channels(self) -> int | None:
        """How many per-channel scales; None for one scale for the whole tensor."""
        if self.per_channel is not None:
            return int(self.per_channel)
        return len(self.scale) if isinstance(self.scale, list) else None

    @property
    def tensor_scale(self) -> float | None:
        """The one scale of a tensor quantized as a whole (None per channel, or when it is no number)."""
        return self.scale if isinstance(self.scale, float) else None

    @property
    def tensor_zero_point(self) -> int:
        """The one zero point of a tensor quantized as a whole (0 when none is recorded)."""
        zero_point = self.zero_point
        return zero_point if isinstance(zero_point, int) and not isinstance(zero_point, bool) else 0


def _quantization_json(quantization: Quantization | None) -> Any:
    return quantization.to_json() if quantization is not None else None


@dataclass(frozen=True)
class Pattern(_Json):
    """The structured-sparsity pattern an inspection was asked about (``structure`` ``"M:N"``: at most M
    non-zeros in N) and the ``share`` of weight groups that comply (None without weights)."""

    structure: str | None = None
    share: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def read(cls, data: Any) -> Pattern | None:
        """The pattern in ``data`` (None for none, or for an entry that is not an object)."""
        return cls.from_json(data) if isinstance(data, Mapping) else None


@dataclass(frozen=True)
class TensorFacts(_Json):
    """One stored tensor of an inspection (``per_tensor``): its role (``weight``, ``bias``,
    ``constant``), storage and what pruning and clustering left in it."""

    role: str | None = None
    shape: list[int] | None = None
    dtype: str | None = None
    size: int | None = None
    bytes: int | None = None
    sparse_encoded: bool | None = None
    sparsity: float | None = None
    unique_values: int | None = None
    unique_values_per_channel_max: int | None = None
    pattern_2_4: float | None = None
    pattern_share: float | None = None
    quantization: Quantization | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorFacts:
        return _read(cls, data, quantization=Quantization.read(data.get("quantization")))

    def to_json(self) -> dict[str, Any]:
        return _write(self, quantization=_quantization_json(self.quantization))

    @property
    def is_weight(self) -> bool:
        return self.role == "weight"

    @property
    def scale(self) -> float | None:
        """The one scale of a tensor quantized as a whole; None when float or quantized per channel."""
        return self.quantization.tensor_scale if self.quantization is not None else None

    @property
    def zero_point(self) -> int | None:
        """The one zero point of a tensor quantized as a whole (None when :attr:`scale` is)."""
        return self.quantization.tensor_zero_point if self.scale is not None else None

    @property
    def channels(self) -> int | None:
        """How many per-channel scales the tensor is quantized with; None when per tensor or float."""
        return self.quantization.channels if self.quantization is not None else None


@dataclass(frozen=True)
class OpFacts(_Json):
    """One op of an inspection (``op_list``): what it computes in, and its kernel's stored dtype."""

    index: int | None = None
    subgraph: int | None = None
    op: str | None = None
    inputs: list[str | None] | None = None
    outputs: list[str | None] | None = None
    macs: int | None = None
    compute: str | None = None  # float, int8, int16, other or conversion
    weights: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FloatOp(_Json):
    """An op an inspection found computing in float (``float_ops``): its name, its first output's and
    its kernel's tensor names. An older report lists only the op's name: read back, it is written so."""

    op: str
    index: int | None = None
    tensor: str | None = None
    kernel: str | None = None
    name_only: bool = False  # read from a plain name (an older report)
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, data: Any) -> FloatOp:
        if isinstance(data, Mapping):
            op = data.get("op")
            return _read(cls, data, op=op if isinstance(op, str) else str(op), name_only=False)
        return cls(op=str(data), name_only=True, keys=())

    def to_json(self) -> Any:
        if self.name_only:
            return self.op
        out = _write(self)
        out.pop("name_only", None)
        return out

    @property
    def names(self) -> tuple[str, ...]:
        """Its output's and its kernel's tensor names, where known: where its layer shows."""
        return tuple(str(name) for name in (self.tensor, self.kernel) if name)


@dataclass(frozen=True)
class IoFacts(_Json):
    """An input or output of the model's main subgraph: what code that feeds the file needs."""

    name: str | None = None
    shape: list[int] | None = None
    shape_signature: list[int] | None = None
    dtype: str | None = None
    quantization: Quantization | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IoFacts:
        return _read(cls, data, quantization=Quantization.read(data.get("quantization")))

    def to_json(self) -> dict[str, Any]:
        return _write(self, quantization=_quantization_json(self.quantization))

    @property
    def scale(self) -> float | None:
        """The per-tensor scale of a quantized tensor (its real value is ``(q - zero point) * scale``)."""
        return self.quantization.tensor_scale if self.quantization is not None else None

    @property
    def zero_point(self) -> int:
        """The per-tensor zero point (0 when none is recorded; meaningful when :attr:`scale` is not None)."""
        return self.quantization.tensor_zero_point if self.quantization is not None else 0


@dataclass(frozen=True)
class Inspection(_Json):
    """What :func:`edgeopt.inspect.inspect_tflite` read from a ``.tflite`` (a variant's ``inspect``).

    The fields and their definitions are :mod:`edgeopt.inspect`'s. An inspection read from an older
    report may lack some: they are None (empty for the collections) and stay absent when written back.
    A variant that is no ``.tflite`` (the Keras model, a failed export) holds an empty one
    (:attr:`empty`), written ``{}``.
    """

    size_bytes: int | None = None
    subgraphs: int | None = None
    ops: Mapping[str, int] = field(default_factory=dict)
    op_list: tuple[OpFacts, ...] = ()
    macs: int | None = None
    params: int | None = None
    weight_elements: int | None = None
    sparsity: float | None = None
    pattern_2_4: float | None = None
    pattern: Pattern | None = None  # {structure: "M:N", share}
    per_tensor: Mapping[str, TensorFacts] = field(default_factory=dict)
    int8_op_coverage: float | None = None
    integer_op_coverage: float | None = None
    float_ops: tuple[FloatOp, ...] = ()
    quantize_ops: Mapping[str, int] = field(default_factory=dict)
    custom_ops: Mapping[str, int] = field(default_factory=dict)
    input_details: tuple[IoFacts, ...] = ()
    output_details: tuple[IoFacts, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    @classmethod
    def nothing(cls) -> Inspection:
        """The inspection of a variant that is no ``.tflite``: written ``{}``."""
        return cls(keys=())

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Inspection:
        """The inspection in ``data`` (a variant's ``inspect``; None or ``{}`` for none). A damaged
        entry (an op or a tensor that is not an object) is left out, never a crash."""
        data = data or {}

        def objects(key: str) -> list[Mapping[str, Any]]:
            items = data.get(key)
            return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []

        def mapping(key: str) -> dict[str, Any]:
            items = data.get(key)
            return dict(items) if isinstance(items, Mapping) else {}

        float_ops = data.get("float_ops") if isinstance(data.get("float_ops"), list) else []
        return _read(
            cls, data,
            ops=mapping("ops"), quantize_ops=mapping("quantize_ops"), custom_ops=mapping("custom_ops"),
            pattern=Pattern.read(data.get("pattern")),
            op_list=tuple(OpFacts.from_json(op) for op in objects("op_list")),
            per_tensor={str(name): TensorFacts.from_json(t) for name, t in mapping("per_tensor").items()
                        if isinstance(t, Mapping)},
            float_ops=tuple(FloatOp.from_json(op) for op in float_ops if isinstance(op, Mapping | str)),
            input_details=tuple(IoFacts.from_json(d) for d in objects("input_details")),
            output_details=tuple(IoFacts.from_json(d) for d in objects("output_details")),
        )

    def to_json(self) -> dict[str, Any]:
        return _write(
            self, op_list=[op.to_json() for op in self.op_list],
            per_tensor={name: t.to_json() for name, t in self.per_tensor.items()},
            float_ops=[op.to_json() for op in self.float_ops],
            input_details=[d.to_json() for d in self.input_details],
            output_details=[d.to_json() for d in self.output_details],
            ops=dict(self.ops), quantize_ops=dict(self.quantize_ops), custom_ops=dict(self.custom_ops),
            pattern=self.pattern.to_json() if self.pattern is not None else None,
        )

    def holds(self, name: str) -> bool:
        """Whether the inspection has the field ``name`` (one read from an older report may not)."""
        return self.keys is None or name in self.keys

    @property
    def empty(self) -> bool:
        """Nothing was inspected: the variant is no ``.tflite``, or its export failed."""
        return self.keys == () and not self.extra

    def weights(self) -> dict[str, TensorFacts]:
        """The weight tensors (kernels of multiply-accumulate ops; biases are not), by tensor name."""
        return {name: t for name, t in self.per_tensor.items() if t.is_weight}

    @property
    def pattern_share(self) -> float | None:
        """The share of M:N-compliant weight groups for the M:N the inspection was asked about."""
        return self.pattern.share if self.pattern is not None else None

    @property
    def pattern_structure(self) -> str | None:
        return self.pattern.structure if self.pattern is not None else None

    def float_op_names(self) -> list[str]:
        """The float ops by op name, sorted and without repeats."""
        return sorted({op.op for op in self.float_ops})


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
    latency: Mapping[LatencyKey, LatencyEntry] = field(default_factory=dict)  # JSON: keyed by str(key)
    inspect: Inspection = field(default_factory=Inspection.nothing)
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"note"})

    def __post_init__(self) -> None:
        if not isinstance(self.inspect, Inspection):  # given as inspect_tflite's dict (its JSON form)
            object.__setattr__(self, "inspect", Inspection.from_json(self.inspect))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        metrics = {k: Metric.read(k, m) for k, m in (data.get("metrics") or {}).items()}
        latency = {LatencyKey.parse(k): LatencyEntry.from_json(e)
                   for k, e in (data.get("latency") or {}).items()}
        return _read(cls, data, metrics=metrics if "metrics" in data else {},
                     latency=latency if "latency" in data else {},
                     inspect=Inspection.from_json(data.get("inspect")),
                     evaluation=data.get("evaluation") or {})

    def to_json(self) -> dict[str, Any]:
        return _write(self, metrics={k: m.to_json() for k, m in self.metrics.items()},
                      latency={str(k): e.to_json() for k, e in self.latency.items()},
                      inspect=self.inspect.to_json())

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
        """The float ops its inspection found, by op name, sorted and without repeats."""
        return self.inspect.float_op_names()


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

    def targets(self) -> list[LatencyKey]:
        """Every latency key (target and thread count) in the report, in first-seen order."""
        seen: list[LatencyKey] = []
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
