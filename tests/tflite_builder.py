"""A tiny ``.tflite`` built with the flatbuffer schema, without TensorFlow: for tests of what reads files
(inspect, evaluate, the bad-input guards). Importable from any test (``pythonpath`` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

DEFAULT_WEIGHTS = np.arange(8, dtype=np.float32).reshape(2, 4) / 10


def fully_connected_tflite(weights: np.ndarray = DEFAULT_WEIGHTS, mutate: Callable | None = None) -> bytes:
    """A one-op FULLY_CONNECTED model, x[1,4] @ w[2,4]^T -> y[1,2], with ``weights`` as w; ``mutate``
    may change the schema's ``ModelT`` before it is written."""
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT() for _ in range(4)]
    model.buffers[2].data = list(np.asarray(weights, dtype=np.float32).tobytes())

    def tensor(name: str, shape: list[int], buffer: int):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, schema.TensorType.FLOAT32, buffer
        return t

    subgraph = schema.SubGraphT()
    subgraph.tensors = [tensor("x", [1, 4], 1), tensor("w", [2, 4], 2), tensor("y", [1, 2], 3)]
    subgraph.inputs, subgraph.outputs = [0], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, -1], [2]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    subgraph.operators = [op]
    model.subgraphs = [subgraph]
    if mutate is not None:
        mutate(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
