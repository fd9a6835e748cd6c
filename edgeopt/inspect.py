"""Read a ``.tflite`` flatbuffer and report what it really holds, without importing TensorFlow.

Contract: :func:`inspect_tflite` takes a path or the file's bytes and returns a plain,
JSON-serialisable dict (see :func:`inspect_tflite` for the fields). It parses the flatbuffer with the
``flatbuffers`` package and the schema module that ships with ``ai_edge_litert``; it never runs the
model. A missing, empty, non-TFLite or truncated file raises :class:`edgeopt.errors.InputError` with
one line naming the problem.

Definitions used throughout (they are part of the contract, the checks in report.json rely on them):

* A **weight tensor** is a constant tensor that is the kernel of a multiply-accumulate op
  (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, CONV_3D, BATCH_MATMUL, EMBEDDING_LOOKUP),
  found directly or behind a DEQUANTIZE (float16 weights) or DENSIFY (sparse-encoded weights) op.
  **Biases are not weight tensors**: pruning and clustering never touch them, and counting them would
  dilute the measured sparsity. They are listed in ``per_tensor`` with ``role: bias``.
* **params** counts the elements of every constant tensor that holds model numbers: weights, biases
  and other numeric constants (e.g. a PReLU slope or an unfused batch-norm scale). Integer constants
  that are shapes, axes or indices (int32/int64 tensors that are not biases) are not counted. A
  tensor's ``bytes`` is what the file stores for it: an int4 tensor packs two values per byte.
* **sparsity** is the fraction of exactly-zero values over all weight tensors together. A quantized
  value is zero when it equals its zero point. A sparse-encoded tensor counts its dense size; the
  values it does not store are zeros.
* **pattern_2_4** is the fraction of groups of 4 consecutive values along the innermost axis (the
  input-channel axis in TFLite's layout, the axis TFMOT's M-by-N pruning uses) with at most 2
  non-zeros; a trailing partial group counts when it has at most 2 non-zeros.
* **unique_values** counts distinct stored values of a tensor (its clusters, after clustering);
  ``unique_values_per_channel_max`` is the largest count within one slice along the quantized
  dimension (axis 0 when not quantized), which is what survives per-channel int8 quantization.
* **macs** counts multiply-accumulates of the ops above, for the tensor shapes stored in the file
  (batch 1 for a batch-dynamic input); element-wise ops and pooling count 0.
* An op **computes in float** when any of its non-constant inputs or outputs is float32, float16 or
  bfloat16. QUANTIZE, DEQUANTIZE and DENSIFY are conversions, not compute ops; QUANTIZE and
  DEQUANTIZE are counted in ``quantize_ops``. ``int8_op_coverage`` is the share of compute ops whose
  activations are all int8/uint8. An op's ``weights`` is the dtype its kernel is stored in: an op
  computing in float with int8 or int4 weights dequantizes them first (weight-only) or quantizes its
  activations on the fly (dynamic range).
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import InputError
from edgeopt.types import Inspection, IoFacts, Pattern, Quantization

TFLITE_IDENTIFIER = b"TFL3"
ROLE_WEIGHT = "weight"
ROLE_BIAS = "bias"
ROLE_CONSTANT = "constant"

FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
INT8_DTYPES = frozenset({"int8", "uint8"})
# Tensor dtypes that carry activations; int32/int64/bool tensors are shapes, indices or masks.
ACTIVATION_DTYPES = FLOAT_DTYPES | INT8_DTYPES | {"int16", "int4"}
CONVERSION_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
# Ops that only move a constant weight into shape or type: followed back to the stored tensor.
PASS_THROUGH_OPS = frozenset({"DEQUANTIZE", "DENSIFY"})

# op name -> (index of the kernel input, index of the bias input or None)
KERNEL_INPUTS: dict[str, tuple[int, int | None]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
    "CONV_3D": (1, 2),
    "CONV_3D_TRANSPOSE": (1, 3),
    "BATCH_MATMUL": (1, None),
    "EMBEDDING_LOOKUP": (1, None),
}

_NUMPY_DTYPES = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8,
    "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "bool": np.bool_,
}


def _schema():
    """The flatbuffer schema module (imported lazily: it pulls in flatbuffers and numpy only)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items()
            if not name.startswith("_") and isinstance(value, int)}


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values] if values is not None else []


def _decode(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _read_bytes(path_or_bytes: str | Path | bytes | bytearray | memoryview) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    path = Path(path_or_bytes)
    if not path.exists():
        raise InputError(f"{path}: file not found (give the path to a .tflite model)")
    if not path.is_file():
        raise InputError(f"{path}: not a file (give the path to a .tflite model)")
    return path.read_bytes(), str(path)


def _parse_model(data: bytes, source: str):
    if len(data) < 8:
        raise InputError(f"{source}: not a TFLite model ({len(data)} bytes; a .tflite file starts "
                         "with a flatbuffer header)")
    if data[4:8] != TFLITE_IDENTIFIER:
        raise InputError(f"{source}: not a TFLite flatbuffer (identifier {data[4:8]!r}, expected "
                         f"{TFLITE_IDENTIFIER!r}); give a .tflite file, e.g. one that edgeopt compress wrote")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # noqa: BLE001 - any parse failure of a damaged file is one bad-input error
        reason = "reads past the end of the file" if isinstance(exc, (struct.error, IndexError)) else str(exc)
        raise InputError(f"{source}: truncated or corrupt TFLite flatbuffer ({len(data):,} bytes; {reason}); "
                         "re-export the model") from None
    if not model.subgraphs:
        raise InputError(f"{source}: TFLite flatbuffer has no subgraph; re-export the model")
    problem = _structure_problem(model)
    if problem:
        raise InputError(f"{source}: corrupt TFLite flatbuffer ({problem}); re-export the model")
    return model


MAX_TENSOR_ELEMENTS = 1 << 40  # far beyond any model that fits in memory; a larger shape is damage


def _structure_problem(model) -> str | None:
    """The first reference in the model that points nowhere, or a shape no tensor can have; else None.

    Everything after parsing indexes tensors, buffers and operator codes by these numbers, so a
    damaged file must be refused here rather than produce an IndexError or nonsense figures later.
    """
    n_buffers = len(model.buffers or [])
    n_codes = len(model.operatorCodes or [])
    for s, subgraph in enumerate(model.subgraphs):
        tensors = subgraph.tensors or []
        for t, raw in enumerate(tensors):
            shape = _ints(raw.shape)
            if any(d < 0 for d in shape) or math.prod(shape) > MAX_TENSOR_ELEMENTS:
                return f"tensor {t} of subgraph {s} has shape {shape}"
            if not 0 <= int(raw.buffer) < max(n_buffers, 1):
                return f"tensor {t} of subgraph {s} refers to buffer {raw.buffer} of {n_buffers}"
            sparsity = raw.sparsity
            if sparsity is not None and (sparsity.traversalOrder is None or sparsity.dimMetadata is None
                                         or len(sparsity.traversalOrder) != len(sparsity.dimMetadata)):
                return f"tensor {t} of subgraph {s} has incomplete sparsity parameters"
        for name, indices in (("input", subgraph.inputs), ("output", subgraph.outputs)):
            bad = [i for i in _ints(indices) if not 0 <= i < len(tensors)]
            if bad:
                return f"subgraph {s} {name} {bad[0]} is not one of its {len(tensors)} tensors"
        for o, op in enumerate(subgraph.operators or []):
            if not 0 <= int(op.opcodeIndex) < n_codes:
                return f"operator {o} of subgraph {s} has opcode {op.opcodeIndex} of {n_codes}"
            bad = [i for i in _ints(op.inputs) + _ints(op.outputs) if not -1 <= i < len(tensors)]
            if bad:
                return f"operator {o} of subgraph {s} uses tensor {bad[0]} of {len(tensors)}"
    return None


class _Tensor:
    """One tensor of the model with the facts the report needs."""

    def __init__(self, raw, subgraph: int, index: int, dtype: str, data: np.ndarray | None,
                 stored_bytes: int = 0):
        self.raw = raw
        self.subgraph = subgraph
        self.index = index
        self.name = _decode(raw.name) or f"tensor_{subgraph}_{index}"
        self.shape = [int(d) for d in (raw.shape if raw.shape is not None else [])]
        signature = raw.shapeSignature
        self.shape_signature = [int(d) for d in signature] if signature is not None else list(self.shape)
        self.dtype = dtype
        self.sparse = raw.sparsity is not None
        if dtype == "int4" and data is not None and not self.sparse and data.size == self.size + 1:
            data = data[:-1]  # an odd count of int4 values leaves the last byte's high nibble unused
        self.data = data  # raw stored values (flat), None for a non-constant tensor
        self.stored_bytes = stored_bytes
        q = raw.quantization
        self.scale = [float(s) for s in q.scale] if q is not None and q.scale is not None else []
        self.zero_point = [int(z) for z in q.zeroPoint] if q is not None and q.zeroPoint is not None else []
        self.quantized_dimension = int(q.quantizedDimension) if q is not None else 0

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1


def _buffer_bytes(model, buffer_index: int, data: bytes, source: str) -> bytes | None:
    if buffer_index <= 0 or buffer_index >= len(model.buffers or []):
        return None
    buffer = model.buffers[buffer_index]
    if buffer.offset and buffer.offset > 1:  # stored after the flatbuffer (models over 2 GB)
        end = int(buffer.offset) + int(buffer.size)
        if end > len(data):
            raise InputError(f"{source}: truncated TFLite file (buffer {buffer_index} ends at byte {end}, "
                             f"file has {len(data)}); re-export the model")
        return data[int(buffer.offset):end]
    if buffer.data is None or len(buffer.data) == 0:
        return None
    return np.asarray(buffer.data, dtype=np.uint8).tobytes()


def _tensor_values(raw_bytes: bytes, dtype: str, tensor_name: str, source: str) -> np.ndarray:
    if dtype == "int4":  # two values per byte, low nibble first
        packed = np.frombuffer(raw_bytes, dtype=np.uint8)
        low = (packed & 0x0F).astype(np.int8)
        high = (packed >> 4).astype(np.int8)
        values = np.stack([low, high], axis=1).reshape(-1)
        return np.where(values > 7, values - 16, values).astype(np.int8)
    np_dtype = _NUMPY_DTYPES.get(dtype)
    if np_dtype is None:
        return np.frombuffer(raw_bytes, dtype=np.uint8)
    itemsize = np.dtype(np_dtype).itemsize
    if len(raw_bytes) % itemsize:
        raise InputError(f"{source}: corrupt TFLite file (tensor '{tensor_name}' holds {len(raw_bytes)} "
                         f"bytes, not a multiple of {dtype}); re-export the model")
    return np.frombuffer(raw_bytes, dtype=np_dtype)


def _index_vector(vector) -> np.ndarray:
    if vector is None or vector.values is None:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(vector.values, dtype=np.int64)


def densify(values: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """Expand TFLite's sparse encoding (traversal order, block map, dense/CSR dimensions) to dense.

    Args:
        values: the stored values, flat, in traversal order.
        shape: the tensor's dense shape.
        sparsity: the tensor's ``SparsityParametersT``.

    Returns:
        The dense array of ``shape``.
    """
    order = [int(d) for d in sparsity.traversalOrder]
    block_map = [int(d) for d in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    dims = sparsity.dimMetadata
    rank = len(shape)
    positions = np.zeros(1, dtype=np.int64)
    coords = np.zeros((1, len(order)), dtype=np.int64)
    for level, dim in enumerate(dims):
        if dim.format == 0:  # DENSE
            size = int(dim.denseSize)
            positions = (positions[:, None] * size + np.arange(size)[None, :]).reshape(-1)
            coords = np.repeat(coords, size, axis=0)
            coords[:, order[level]] = np.tile(np.arange(size), len(coords) // size if size else 0)
        else:  # SPARSE_CSR
            segments = _index_vector(dim.arraySegments)
            indices = _index_vector(dim.arrayIndices)
            counts = segments[positions + 1] - segments[positions]
            starts = np.repeat(segments[positions], counts)
            offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            positions = starts + offsets
            coords = np.repeat(coords, counts, axis=0)
            coords[:, order[level]] = indices[positions]
    dense = np.zeros(shape, dtype=values.dtype)
    full = coords[:, :rank].copy()
    for block_dim, original_dim in enumerate(block_map):
        block_size = int(dims[order.index(rank + block_dim)].denseSize)
        full[:, original_dim] = full[:, original_dim] * block_size + coords[:, rank + block_dim]
    dense[tuple(full.T)] = values[positions]
    return dense


def _dense_values(tensor: _Tensor, source: str) -> np.ndarray:
    """The tensor's stored values as a dense array of its shape."""
    if tensor.sparse:
        try:
            return densify(tensor.data, tensor.shape, tensor.raw.sparsity)
        except (IndexError, ValueError, TypeError):  # index vectors that do not match the shape
            raise InputError(f"{source}: corrupt TFLite file (sparse tensor '{tensor.name}' does not "
                             f"expand to its shape {tensor.shape}); re-export the model") from None
    if tensor.data.size != tensor.size:
        raise InputError(f"{source}: truncated or corrupt TFLite file (tensor '{tensor.name}' of shape "
                         f"{tensor.shape} holds {tensor.data.size} values); re-export the model")
    return tensor.data.reshape(tensor.shape) if tensor.shape else tensor.data


def _zero_mask(tensor: _Tensor, dense: np.ndarray) -> np.ndarray:
    """True where the stored value means exactly zero (a quantized value equal to its zero point)."""
    if not tensor.zero_point or tensor.dtype in FLOAT_DTYPES or not any(tensor.zero_point):
        return dense == 0
    zp = np.asarray(tensor.zero_point)
    if zp.size == 1 or dense.ndim == 0:
        return dense == zp.reshape(-1)[0]
    axis = tensor.quantized_dimension
    view = [1] * dense.ndim
    view[axis] = zp.size
    return dense == zp.reshape(view)


def pattern_m_by_n(nonzero: np.ndarray, m: int = 2, n: int = 4) -> float | None:
    """Fraction of groups of ``n`` consecutive values along the last axis with at most ``m`` non-zeros."""
    if nonzero.ndim == 0 or nonzero.size == 0:
        return None
    rows = nonzero.reshape(-1, nonzero.shape[-1])
    width = rows.shape[1]
    full = width // n
    ok = total = 0
    if full:
        groups = rows[:, : full * n].reshape(rows.shape[0], full, n).sum(axis=2)
        ok += int((groups <= m).sum())
        total += groups.size
    if width % n:
        rest = rows[:, full * n:].sum(axis=1)
        ok += int((rest <= m).sum())
        total += rest.size
    return ok / total if total else None


def _unique_per_channel_max(dense: np.ndarray, axis: int) -> int:
    if dense.ndim == 0:
        return 1
    moved = np.moveaxis(dense, axis, 0).reshape(dense.shape[axis], -1)
    return max(int(np.unique(row).size) for row in moved) if moved.size else 0


def _quantization(tensor: _Tensor, *, listed: bool = True) -> Quantization | None:
    """The tensor's quantization parameters: one scale and zero point, or per channel (listed, or
    only counted when not ``listed``); None for a tensor that is not quantized."""
    if not tensor.scale:
        return None
    if len(tensor.scale) == 1:
        return Quantization.of_tensor(tensor.scale[0], tensor.zero_point[0] if tensor.zero_point else 0)
    if not listed:
        return Quantization.counted(len(tensor.scale), tensor.quantized_dimension)
    return Quantization.of_channels(tensor.scale, tensor.zero_point, tensor.quantized_dimension)


def _quantization_json(tensor: _Tensor, *, listed: bool = True) -> dict[str, Any] | None:
    quantization = _quantization(tensor, listed=listed)
    return quantization.to_json() if quantization is not None else None


def _io_summary(tensor: _Tensor) -> dict[str, Any]:
    return IoFacts(name=tensor.name, shape=tensor.shape, shape_signature=tensor.shape_signature,
                   dtype=tensor.dtype, quantization=_quantization(tensor)).to_json()


def _op_macs(op_name: str, inputs: list[_Tensor | None], outputs: list[_Tensor | None],
             kernel: _Tensor | None) -> int:
    out = outputs[0] if outputs else None
    if out is None or kernel is None or not kernel.shape:
        return 0
    k = kernel.shape
    if op_name in ("CONV_2D", "CONV_3D"):
        return out.size * int(math.prod(k[1:])) if op_name == "CONV_2D" else out.size * int(math.prod(k[:-1]))
    if op_name == "DEPTHWISE_CONV_2D":
        return out.size * int(math.prod(k[1:3]))
    if op_name == "FULLY_CONNECTED":
        return out.size * int(k[-1])
    if op_name == "TRANSPOSE_CONV":
        data = inputs[2] if len(inputs) > 2 else None
        return (data.size if data is not None else 0) * int(math.prod(k[:3]))
    if op_name == "CONV_3D_TRANSPOSE":
        data = inputs[2] if len(inputs) > 2 else None
        return (data.size if data is not None else 0) * int(math.prod(k[:3])) * int(k[4] if len(k) > 4 else 1)
    if op_name == "BATCH_MATMUL":
        return out.size * int(k[-2]) if len(k) >= 2 else 0
    return 0


def inspect_tflite(
    path_or_bytes: str | Path | bytes | bytearray | memoryview, pattern: tuple[int, int] = (2, 4)
) -> dict[str, Any]:
    """Inspect a TFLite model: ops, dtypes, params, MACs, sparsity and clusters, from the file itself.

    Args:
        path_or_bytes: a path to a ``.tflite`` file, or its contents.
        pattern: the ``(M, N)`` of the structured-sparsity pattern to check besides 2:4 (what a
            recipe's ``structure: M:N`` asked for).

    Returns:
        A JSON-serialisable dict with: ``size_bytes``; ``subgraphs``; ``ops`` (op name -> count);
        ``op_list`` (per op: ``index``, ``subgraph``, ``op``, ``inputs``/``outputs`` dtypes, ``macs``,
        ``compute``: ``float``/``int8``/``int16``/``other``/``conversion``, ``weights``: the stored
        dtype of its kernel, or None); ``macs`` (total);
        ``params``; ``weight_elements``; ``sparsity`` (over weight tensors, biases excluded);
        ``pattern_2_4`` (over weight tensors); ``pattern`` (``structure`` "M:N" and ``share`` of
        compliant groups over weight tensors, for ``pattern``); ``per_tensor`` (tensor name ->
        ``role``, ``shape``,
        ``dtype``, ``size``, ``bytes``, ``sparse_encoded``, ``sparsity``, ``unique_values``,
        ``unique_values_per_channel_max``, ``pattern_2_4``, ``pattern_share``); ``int8_op_coverage``;
        ``integer_op_coverage`` (int8 or int16 activations); ``float_ops`` (list of ``{index, op,
        tensor, kernel}``: its first output's and its kernel's tensor names);
        ``quantize_ops`` (``{"QUANTIZE": n, "DEQUANTIZE": n}``); ``custom_ops`` (name -> count);
        ``input_details`` / ``output_details`` (name, shape, shape_signature, dtype, quantization).

    Raises:
        InputError: the file is missing, empty, not a TFLite flatbuffer, or truncated.
    """
    return _inspect(*_read_bytes(path_or_bytes), pattern=pattern)[0]


def inspection(
    path_or_bytes: str | Path | bytes | bytearray | memoryview, pattern: tuple[int, int] = (2, 4)
) -> Inspection:
    """:func:`inspect_tflite` as the typed :class:`~edgeopt.types.Inspection` a variant holds: what
    edgeopt's own readers take (the dict stays the public, JSON form).

    Raises:
        InputError: the file is missing, empty, not a TFLite flatbuffer, or truncated.
    """
    return Inspection.from_json(inspect_tflite(path_or_bytes, pattern=pattern))


def typed(info: Inspection | dict[str, Any]) -> Inspection:
    """``info`` as an :class:`~edgeopt.types.Inspection`, given it or :func:`inspect_tflite`'s dict."""
    return info if isinstance(info, Inspection) else Inspection.from_json(info)


def tensor_arrays(path_or_bytes: str | Path | bytes | bytearray | memoryview) -> dict[str, np.ndarray]:
    """The stored values of every weight, bias and numeric constant tensor, densified, by tensor name.

    Values are as stored (int8 stays int8, sparse-encoded tensors are expanded to their dense shape),
    keyed like ``per_tensor`` in :func:`inspect_tflite`.

    Raises:
        InputError: the file is missing, empty, not a TFLite flatbuffer, or truncated.
    """
    return _inspect(*_read_bytes(path_or_bytes))[1]


def _inspect(
    data: bytes, source: str, pattern: tuple[int, int] = (2, 4)
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    model = _parse_model(data, source)
    schema = _schema()
    type_names = {k: v.lower() for k, v in _enum_names(schema.TensorType).items()}
    op_names = _enum_names(schema.BuiltinOperator)

    opcode_names: list[str] = []
    custom_by_opcode: dict[int, str] = {}
    for i, code in enumerate(model.operatorCodes or []):
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom_by_opcode[i] = _decode(code.customCode) or "<unnamed>"
            name = f"CUSTOM:{custom_by_opcode[i]}"
        opcode_names.append(name)

    tensors: list[list[_Tensor]] = []
    for s, subgraph in enumerate(model.subgraphs):
        row = []
        for t, raw in enumerate(subgraph.tensors or []):
            dtype = type_names.get(int(raw.type), f"type_{raw.type}")
            stored = _buffer_bytes(model, int(raw.buffer), data, source)
            values = _tensor_values(stored, dtype, _decode(raw.name), source) if stored is not None else None
            row.append(_Tensor(raw, s, t, dtype, values, len(stored) if stored is not None else 0))
        tensors.append(row)

    def tensor_at(s: int, index: int) -> _Tensor | None:
        return tensors[s][index] if 0 <= index < len(tensors[s]) else None

    # Producer of each tensor, to follow a kernel back through DEQUANTIZE / DENSIFY to its storage.
    producers: dict[tuple[int, int], tuple[str, list[int]]] = {}
    for s, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators or []:
            name = opcode_names[op.opcodeIndex] if op.opcodeIndex < len(opcode_names) else "UNKNOWN"
            for out in _ints(op.outputs):
                producers[(s, int(out))] = (name, _ints(op.inputs))

    def stored_source(s: int, index: int) -> _Tensor | None:
        seen = 0
        while index >= 0 and seen < 8:
            tensor = tensor_at(s, index)
            if tensor is None:
                return None
            if tensor.is_constant:
                return tensor
            producer = producers.get((s, index))
            if producer is None or producer[0] not in PASS_THROUGH_OPS or not producer[1]:
                return None
            index = producer[1][0]
            seen += 1
        return None

    roles: dict[tuple[int, int], str] = {}
    op_list: list[dict[str, Any]] = []
    ops: Counter[str] = Counter()
    custom_ops: Counter[str] = Counter()
    quantize_ops: Counter[str] = Counter({"QUANTIZE": 0, "DEQUANTIZE": 0})
    float_ops: list[dict[str, Any]] = []
    compute_ops = int8_ops = integer_ops = 0
    total_macs = 0
    for s, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators or []:
            name = opcode_names[op.opcodeIndex] if op.opcodeIndex < len(opcode_names) else "UNKNOWN"
            in_idx = _ints(op.inputs)
            out_idx = _ints(op.outputs)
            inputs = [tensor_at(s, i) for i in in_idx]
            outputs = [tensor_at(s, i) for i in out_idx]
            kernel = None
            if name in KERNEL_INPUTS:
                k_pos, b_pos = KERNEL_INPUTS[name]
                if k_pos < len(in_idx):
                    kernel = stored_source(s, in_idx[k_pos])
                    if kernel is not None:
                        roles[(s, kernel.index)] = ROLE_WEIGHT
                if b_pos is not None and b_pos < len(in_idx):
                    bias = stored_source(s, in_idx[b_pos])
                    if bias is not None and roles.get((s, bias.index)) != ROLE_WEIGHT:
                        roles[(s, bias.index)] = ROLE_BIAS
            for t in inputs:
                if t is not None and t.is_constant and t.dtype in ACTIVATION_DTYPES:
                    roles.setdefault((s, t.index), ROLE_CONSTANT)
            macs = _op_macs(name, inputs, outputs, kernel)
            total_macs += macs
            ops[name] += 1
            if name.startswith("CUSTOM:"):
                custom_ops[name.removeprefix("CUSTOM:")] += 1
            activations = {t.dtype for t in inputs + outputs
                           if t is not None and not t.is_constant and t.dtype in ACTIVATION_DTYPES}
            if name in CONVERSION_OPS or name in PASS_THROUGH_OPS:
                if name in CONVERSION_OPS:
                    quantize_ops[name] += 1
                compute = "conversion"
            else:
                if activations & FLOAT_DTYPES:
                    compute = "float"
                elif activations and activations <= INT8_DTYPES:
                    compute = "int8"
                elif activations and activations <= INT8_DTYPES | {"int16", "int4"}:
                    compute = "int16"
                else:
                    compute = "other"
                compute_ops += 1
                int8_ops += compute == "int8"
                integer_ops += compute in ("int8", "int16")
                if compute == "float":
                    float_ops.append({"index": len(op_list), "op": name,
                                      "tensor": outputs[0].name if outputs and outputs[0] else None,
                                      "kernel": kernel.name if kernel is not None else None})
            op_list.append({
                "index": len(op_list), "subgraph": s, "op": name,
                "inputs": [t.dtype if t is not None else None for t in inputs],
                "outputs": [t.dtype if t is not None else None for t in outputs],
                "macs": macs, "compute": compute, "weights": kernel.dtype if kernel is not None else None,
            })

    per_tensor: dict[str, dict[str, Any]] = {}
    arrays: dict[str, np.ndarray] = {}
    params = weight_elements = weight_zeros = 0
    groups_ok = groups_total = 0.0
    m, n = pattern
    asked_ok = asked_total = 0.0
    for (s, index), role in sorted(roles.items()):
        tensor = tensors[s][index]
        dense = _dense_values(tensor, source)
        zero = _zero_mask(tensor, dense)
        size = int(dense.size)
        params += size
        weight = role == ROLE_WEIGHT and dense.ndim >= 1
        share_2_4 = pattern_m_by_n(~zero) if weight else None
        share = pattern_m_by_n(~zero, m, n) if weight else None
        entry = {
            "role": role, "shape": tensor.shape, "dtype": tensor.dtype, "size": size,
            "bytes": tensor.stored_bytes, "sparse_encoded": tensor.sparse,
            "sparsity": float(zero.sum() / size) if size else 0.0,
            "unique_values": int(np.unique(dense).size),
            "unique_values_per_channel_max": _unique_per_channel_max(
                dense, tensor.quantized_dimension if tensor.scale and len(tensor.scale) > 1 else 0),
            "pattern_2_4": share_2_4,
            "pattern_share": share,
            "quantization": _quantization_json(tensor, listed=False),
        }
        if role == ROLE_WEIGHT:
            weight_elements += size
            weight_zeros += int(zero.sum())
            if share_2_4 is not None:
                rows = max(1, size // max(1, dense.shape[-1]))
                n_groups = rows * math.ceil(dense.shape[-1] / 4)
                groups_ok += share_2_4 * n_groups
                groups_total += n_groups
                asked_groups = rows * math.ceil(dense.shape[-1] / n)
                asked_ok += share * asked_groups
                asked_total += asked_groups
        key = tensor.name if tensor.name not in per_tensor else f"{tensor.name}#{s}:{index}"
        per_tensor[key] = entry
        arrays[key] = dense

    main = model.subgraphs[0]
    summary = {
        "size_bytes": len(data),
        "subgraphs": len(model.subgraphs),
        "ops": dict(ops),
        "op_list": op_list,
        "macs": total_macs,
        "params": params,
        "weight_elements": weight_elements,
        "sparsity": weight_zeros / weight_elements if weight_elements else 0.0,
        "pattern_2_4": groups_ok / groups_total if groups_total else None,
        "pattern": Pattern(structure=f"{m}:{n}",
                           share=asked_ok / asked_total if asked_total else None).to_json(),
        "per_tensor": per_tensor,
        "int8_op_coverage": int8_ops / compute_ops if compute_ops else 0.0,
        "integer_op_coverage": integer_ops / compute_ops if compute_ops else 0.0,
        "float_ops": float_ops,
        "quantize_ops": dict(quantize_ops),
        "custom_ops": dict(custom_ops),
        "input_details": [_io_summary(tensors[0][i]) for i in _ints(main.inputs)],
        "output_details": [_io_summary(tensors[0][i]) for i in _ints(main.outputs)],
    }
    return summary, arrays


IO_HEADERS = ["input/output", "name", "shape", "dtype", "scale", "zero point"]


def io_rows(info: Inspection | dict[str, Any]) -> list[list[Any]]:
    """One row per input and output of an inspection (:data:`IO_HEADERS`): what code that feeds the
    file needs. A quantized tensor's real value is ``(q - zero point) * scale``; ``-`` for a float one."""
    info = typed(info)
    rows = []
    for kind, details in (("input", info.input_details), ("output", info.output_details)):
        for d in details:
            rows.append([kind, d.name, "x".join(map(str, d.shape or [])), d.dtype,
                         "-" if d.scale is None else f"{d.scale:.6g}",
                         "-" if d.scale is None else str(d.zero_point)])
    return rows


def _scaled(detail: IoFacts) -> str:
    if detail.scale is None:
        return ""
    return f" (scale {detail.scale:.6g}, zero point {detail.zero_point})"


def summary_lines(info: Inspection | dict[str, Any]) -> list[str]:
    """A short human rendering of :func:`inspect_tflite`'s result (used by ``edgeopt inspect``)."""
    info = typed(info)
    ops = ", ".join(f"{name} x{count}" for name, count in sorted(info.ops.items()))
    io = "; ".join(f"{d.name} {d.dtype}{d.shape}{_scaled(d)}" for d in info.input_details)
    out = "; ".join(f"{d.name} {d.dtype}{d.shape}{_scaled(d)}" for d in info.output_details)
    floats = ", ".join(f"{f.op}#{f.index}" for f in info.float_ops) or "none"
    stored = Counter(t.dtype for t in info.weights().values())
    dtypes = ", ".join(f"{dtype} x{count}" for dtype, count in sorted(stored.items()))
    pattern = info.pattern_2_4
    extra = ""
    if info.pattern_structure != "2:4" and info.pattern_share is not None:
        extra = f", {info.pattern_structure} compliance {info.pattern_share:.3f}"
    return [
        f"size {info.size_bytes:,} bytes, params {info.params:,}, MACs {info.macs:,}",
        f"ops: {ops}",
        f"input: {io}",
        f"output: {out}",
        f"weight sparsity {info.sparsity:.3f}"
        + (f", 2:4 compliance {pattern:.3f}" if pattern is not None else "") + extra
        + (f"; weights stored as {dtypes}" if dtypes else ""),
        f"int8 op coverage {info.int8_op_coverage:.2f}; float ops: {floats}",
        f"QUANTIZE x{info.quantize_ops['QUANTIZE']}, DEQUANTIZE x{info.quantize_ops['DEQUANTIZE']}; "
        f"custom ops: {', '.join(info.custom_ops) or 'none'}",
    ]
