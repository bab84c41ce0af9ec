"""The Open Inference Protocol ("v2": KServe, Triton, Seldon MLServer), REST.

Endpoints (kserve docs/predict-api/v2/required_api.md), each also with `/versions/{version}` after the
model name, which must be the version being served (404 otherwise):

    GET  /v2                                server metadata
    GET  /v2/health/live, /v2/health/ready  200 or 503 ("ready": the model is loaded)
    GET  /v2/models/{name}                  model metadata from the registered model's signature
    GET  /v2/models/{name}/ready
    POST /v2/models/{name}/infer

Metadata follows Seldon MLServer's MLflow runtime: one input per signature column, named after it, shape
[-1, 1], datatype from the column type (double FP64, float FP32, long INT64, integer INT32, boolean BOOL).
`infer` takes those inputs (shape [N] or [N, 1], data flat or nested) or one FP32/FP64 tensor of shape
[N, F] whose columns are the features in metadata order; it answers one FP64 output `output-0` of shape
[N] (KServe's name for an unnamed output), echoes the request `id` and answers errors as {"error": ...}.
Triton's binary tensor data extension is read and written: a JSON header of `Inference-Header-Content-
Length` bytes followed by the raw little-endian tensors (`binary_data_size` per input; outputs in binary
when the request asks for `binary_data_output` or an output's `binary_data`), as tritonclient sends by
default. Triton's client sends no Content-Type: a request without one is read as JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .loader import LoadedModel
from .request import content_length, parse_json
from .route import Headers, Reply, Scoring
from .validation import RequestError, Validator, short_repr

SERVER_NAME = "mlops-model-server"
# The server's HTTP API version: 1 = /predict only, 2 = also /invocations and the Open Inference Protocol.
SERVER_VERSION = "2"
EXTENSIONS = ["binary_tensor_data"]
OUTPUT = "output-0"
INFERENCE_HEADER = b"inference-header-content-length"
_OCTET_STREAM = b"application/octet-stream"

# MLflow column type -> tensor datatype (MLServer's MLflow runtime uses the same table).
DATATYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL"}
# Tensor datatype -> little-endian numpy dtype of its binary form.
_NUMPY = {
    "BOOL": "?",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP32": "<f4",
    "FP64": "<f8",
}
_INTEGER = frozenset(t for t in _NUMPY if "INT" in t)
# Column kind -> the datatypes that can carry it.
_ACCEPTS = {"float": _INTEGER | {"FP32", "FP64"}, "int": _INTEGER, "bool": frozenset({"BOOL"})}
_REQUEST_FIELDS = ("id", "parameters", "inputs", "outputs", "model_name")  # model_name: KServe's SDK sends it
_INPUT_FIELDS = ("name", "shape", "datatype", "parameters", "data")


@dataclass(frozen=True)
class Target:
    """A parsed /v2 path: what it asks for, and the model name and version it names (if any)."""

    kind: str  # "server", "live", "ready", "model", "model_ready", "infer"
    name: str = ""
    version: str | None = None


def match(path: str) -> Target | None:
    """The /v2 endpoint a path names, or None."""
    parts = path.rstrip("/").split("/")[1:] if path != "/" else []
    if parts == ["v2"]:
        return Target("server")
    if parts in (["v2", "health", "live"], ["v2", "health", "ready"]):
        return Target(parts[2])
    if len(parts) < 3 or parts[:2] != ["v2", "models"] or not parts[2]:
        return None
    name, rest, version = parts[2], parts[3:], None
    if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
        version, rest = rest[1], rest[2:]
    if rest == []:
        return Target("model", name, version)
    if rest in (["ready"], ["infer"]):
        return Target("model_ready" if rest == ["ready"] else "infer", name, version)
    return None


def check_target(target: Target, model_name: str, model: LoadedModel | None) -> None:
    """404 for another model or a version not served here; 503 while no model is loaded."""
    if target.name != model_name:
        raise RequestError(404, f"unknown model {short_repr(target.name)}; this server serves {model_name!r}")
    if model is None:
        raise RequestError(503, "model not loaded yet")
    if target.version is not None and target.version != model.version:
        raise RequestError(
            404,
            f"model {model_name!r} version {short_repr(target.version)} is not served here; "
            f"this server serves version {model.version!r} ({model.alias})",
        )


def server_metadata() -> bytes:
    return json.dumps({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}).encode()


def model_metadata(model: LoadedModel) -> bytes:
    inputs = [
        {"name": c.name, "datatype": DATATYPES[c.mlflow_type], "shape": [-1, 1]}
        for c in model.validator.columns
    ]
    return json.dumps(
        {
            "name": model.name,
            "versions": [model.version],
            "platform": "onnx_onnxv1" if model.runtime == "onnx" else "mlflow_pyfunc",
            "inputs": inputs,
            "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
        }
    ).encode()


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class InferRoute:
    label = "/v2/models/{name}/infer"  # the versioned form counts here too

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def content_length(self, headers: Headers) -> tuple[int, bool]:
        return content_length(headers, missing_ok=True, binary=_header_length(headers) is not None)

    def error(self, status: int, message: str) -> bytes:
        return error_body(message)

    def parse(self, raw: bytes, headers: Headers, model: LoadedModel) -> Scoring:
        header = _header_length(headers)
        binary = b""
        if header is not None:
            if header > len(raw):
                raise RequestError(
                    400, f"Inference-Header-Content-Length {header} is beyond the body ({len(raw)} bytes)"
                )
            raw, binary = raw[:header], raw[header:]
        request = parse_json(raw)
        if type(request) is not dict:
            raise RequestError(422, "body must be a JSON object with 'inputs'")
        for key in request:
            if key not in _REQUEST_FIELDS:
                raise RequestError(422, f"unexpected field {short_repr(key)} in the inference request")
        if "model_name" in request and request["model_name"] != self.model_name:
            raise RequestError(
                422, f"'model_name' {short_repr(request['model_name'])} is not the model in the path"
            )
        request_id = request.get("id")
        if request_id is not None and type(request_id) is not str:
            raise RequestError(422, "'id' must be a string")
        binary_out = _binary_output(request)
        tensors = _read_inputs(request.get("inputs"), binary)
        rows = _rows(model.validator, tensors)

        def reply(model: LoadedModel, scores: list[float]) -> Reply:
            return _response(model, scores, request_id, binary_out)

        return Scoring(rows, _row_where, reply)


def _row_where(i: int) -> str:
    return f"row {i}"


def _header_length(headers: Headers) -> int | None:
    for k, v in headers:
        if k == INFERENCE_HEADER:
            if not v.isdigit():
                raise RequestError(400, "Inference-Header-Content-Length must be a byte count")
            return int(v)
    return None


def _binary_output(request: dict) -> bool:
    """Whether the one output goes back as binary (Triton's binary tensor data extension)."""
    parameters = request.get("parameters", {})
    if type(parameters) is not dict:
        raise RequestError(422, "'parameters' must be an object")
    binary = parameters.get("binary_data_output") is True
    outputs = request.get("outputs")
    if outputs is None:
        return binary
    if type(outputs) is not list or not all(type(o) is dict for o in outputs):
        raise RequestError(422, "'outputs' must be a list of objects")
    for out in outputs:
        if out.get("name") != OUTPUT:
            raise RequestError(422, f"unknown output {short_repr(out.get('name'))}; the model has {OUTPUT!r}")
        params = out.get("parameters", {})
        if type(params) is not dict:
            raise RequestError(422, f"'parameters' of output {OUTPUT!r} must be an object")
        unknown = [k for k in params if k != "binary_data"]
        if unknown:
            raise RequestError(422, f"output parameter {short_repr(unknown[0])} is not supported")
        if "binary_data" in params:
            binary = params["binary_data"] is True
    return binary


@dataclass
class _Tensor:
    name: str
    datatype: str
    shape: list[int]
    values: list[Any]  # flat, row-major


def _read_inputs(inputs: object, binary: bytes) -> list[_Tensor]:
    if type(inputs) is not list or not inputs:
        raise RequestError(422, "'inputs' must be a non-empty list of tensors")
    tensors, offset = [], 0
    for i, inp in enumerate(inputs):
        if type(inp) is not dict:
            raise RequestError(422, f"inputs[{i}] must be an object")
        for key in inp:
            if key not in _INPUT_FIELDS:
                raise RequestError(422, f"inputs[{i}]: unexpected field {short_repr(key)}")
        name, datatype, shape = inp.get("name"), inp.get("datatype"), inp.get("shape")
        if type(name) is not str:
            raise RequestError(422, f"inputs[{i}]: 'name' must be a string")
        label = f"input {short_repr(name)}"
        if datatype not in _NUMPY:
            raise RequestError(
                422, f"{label}: datatype {short_repr(datatype)} is not served; use one of {', '.join(_NUMPY)}"
            )
        if (
            type(shape) is not list
            or not 1 <= len(shape) <= 2
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise RequestError(422, f"{label}: 'shape' must be [N] or [N, F] with non-negative integers")
        count = math.prod(shape)
        params = inp.get("parameters", {})
        if type(params) is not dict:
            raise RequestError(422, f"{label}: 'parameters' must be an object")
        size = params.get("binary_data_size")
        if size is not None:
            if "data" in inp:
                raise RequestError(422, f"{label}: give 'data' or 'binary_data_size', not both")
            values, offset = _binary_values(label, datatype, count, size, binary, offset)
        elif "data" in inp:
            values = _json_values(label, inp["data"], shape, count)
            if datatype in _INTEGER and not all(type(v) is int for v in values):
                raise RequestError(422, f"{label}: datatype {datatype} holds integers only")
        else:
            raise RequestError(422, f"{label}: 'data' is missing")
        tensors.append(_Tensor(name, datatype, shape, values))
    if offset != len(binary):
        raise RequestError(400, f"binary tensor data: {len(binary) - offset} bytes after the last input")
    return tensors


def _binary_values(
    label: str, datatype: str, count: int, size: object, binary: bytes, offset: int
) -> tuple[list[Any], int]:
    dtype = np.dtype(_NUMPY[datatype])
    if type(size) is not int or size != count * dtype.itemsize:
        raise RequestError(
            422, f"{label}: binary_data_size {size!r} is not {count} x {dtype.itemsize} bytes of {datatype}"
        )
    if offset + size > len(binary):
        raise RequestError(
            400, f"{label}: binary tensor data ends after {len(binary)} of {offset + size} bytes"
        )
    values = np.frombuffer(binary, dtype=dtype, count=count, offset=offset).tolist()
    return values, offset + size


def _json_values(label: str, data: object, shape: list[int], count: int) -> list[Any]:
    """Tensor data flat or nested as its shape (the protocol allows both), flattened row-major."""
    if type(data) is not list:
        raise RequestError(422, f"{label}: 'data' must be a list")
    if data and type(data[0]) is list:
        if (
            len(shape) != 2
            or len(data) != shape[0]
            or not all(type(r) is list and len(r) == shape[1] for r in data)
        ):
            raise RequestError(422, f"{label}: nested 'data' does not match shape {shape}")
        flat = [v for r in data for v in r]
    else:
        flat = data
    if len(flat) != count:
        raise RequestError(422, f"{label}: {len(flat)} values for shape {shape} ({count})")
    return flat


def _rows(v: Validator, tensors: list[_Tensor]) -> list[list[float]]:
    features = {c.name: c for c in v.columns}
    if len(tensors) == 1 and tensors[0].name not in features:
        return _matrix_rows(v, tensors[0])
    by_name: dict[str, _Tensor] = {}
    for t in tensors:
        label = f"input {short_repr(t.name)}"
        if t.name not in features:
            raise RequestError(
                422,
                f"unexpected {label}: give one input per feature ({_names(v)}) or one [N, {v.n_features}] tensor",
            )
        if t.name in by_name:
            raise RequestError(422, f"{label} given twice")
        if len(t.shape) == 2 and t.shape[1] != 1:
            raise RequestError(422, f"{label}: shape {t.shape}: a feature's input is [N] or [N, 1]")
        if t.datatype not in _ACCEPTS[features[t.name].kind]:
            raise RequestError(
                422,
                f"{label}: datatype {t.datatype} cannot carry the {features[t.name].mlflow_type} feature {t.name!r}",
            )
        by_name[t.name] = t
    counts = {t.shape[0] for t in tensors}
    if len(counts) != 1:
        raise RequestError(422, f"the inputs have different numbers of rows ({sorted(counts)})")
    return v.column_rows({name: t.values for name, t in by_name.items()}, "inputs", row_name="row ")


def _matrix_rows(v: Validator, t: _Tensor) -> list[list[float]]:
    label = f"input {short_repr(t.name)}"
    if len(t.shape) != 2 or t.shape[1] != v.n_features:
        raise RequestError(
            422,
            f"{label} is not a feature; one tensor must have shape [N, {v.n_features}] "
            f"(columns {_names(v)}), got {t.shape}",
        )
    if t.datatype not in ("FP32", "FP64"):
        raise RequestError(422, f"{label}: a [N, F] tensor must be FP32 or FP64, got {t.datatype}")
    if any(c.kind != "float" for c in v.columns):
        raise RequestError(
            422, f"{label}: the model has integer or boolean features; send one input per feature"
        )
    n, f = t.shape
    v.check_count(n, "inputs")
    values = v.values
    return [values(t.values[i * f : (i + 1) * f], f"row {i}") for i in range(n)]


def _names(v: Validator) -> str:
    names = ", ".join(v.names[:5])
    return names + (", ..." if v.n_features > 5 else "")


def _response(model: LoadedModel, scores: list[float], request_id: str | None, binary: bool) -> Reply:
    output: dict[str, Any] = {"name": OUTPUT, "datatype": "FP64", "shape": [len(scores)]}
    head: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        head["id"] = request_id
    head["outputs"] = [output]
    if not binary:
        output["data"] = scores
        return Reply(json.dumps(head).encode())
    raw = np.asarray(scores, dtype="<f8").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps(head).encode()
    return Reply(header + raw, ((INFERENCE_HEADER, str(len(header)).encode()),), _OCTET_STREAM)
