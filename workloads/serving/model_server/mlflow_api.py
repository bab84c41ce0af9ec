"""POST /invocations: the JSON scoring protocol of `mlflow models serve`.

The formats and answers of MLflow's scoring server (mlflow/pyfunc/scoring_server/__init__.py, MLflow
3.17), read with this server's validator. A body is a JSON object with exactly one of

- `dataframe_split`: pandas `orient="split"`, `{"columns": [...], "data": [[...], ...], "index": [...]}`;
  columns are matched to the model's features by name, `index` is optional and ignored;
- `dataframe_records`: `[{"f0": 1.0, ...}, ...]`;
- `instances`: a list of records, or `{"f0": [values], ...}` (columns);
- `inputs`: `{"f0": [values], ...}` (columns), `{"f0": 1.0, ...}` (one row) or a list of records.

The answer is `{"predictions": [...]}`; an error is MLflow's `{"error_code", "message"}` with the status
/predict gives the same problem. Stricter than MLflow where the input contract is: a column the model
does not take, a top-level field besides the format, non-empty `params` (the model is called with its
defaults) and `dataframe_split` without `columns` are refused by name instead of ignored or guessed;
CSV and Parquet bodies are not read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .loader import LoadedModel
from .request import content_length, parse_json
from .route import Headers, Reply, Scoring
from .validation import RequestError, Validator, short_repr

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMAT_LIST = ", ".join(repr(f) for f in FORMATS)
# MLflow's error codes (mlflow/exceptions.py) for the statuses this server answers with.
_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    422: "INVALID_PARAMETER_VALUE",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


class InvocationsRoute:
    label = "/invocations"

    def content_length(self, headers: Headers) -> tuple[int, bool]:
        try:
            return content_length(headers)
        except RequestError as exc:
            if exc.status == 415 and "Content-Encoding" not in exc.message:
                exc.message += "; MLflow's CSV and Parquet bodies are not served here"
            raise

    def parse(self, raw: bytes, headers: Headers, model: LoadedModel) -> Scoring:
        body = parse_json(raw)
        if type(body) is not dict:
            raise RequestError(422, f"body must be a JSON object with exactly one of {_FORMAT_LIST}")
        given = [f for f in FORMATS if f in body]
        if len(given) != 1:
            got = ", ".join(short_repr(k) for k in list(body)[:5]) or "nothing"
            raise RequestError(422, f"body must have exactly one of {_FORMAT_LIST}; got {got}")
        fmt = given[0]
        extra = [k for k in body if k not in (fmt, "params")]
        if extra:
            raise RequestError(422, f"unexpected top-level field {short_repr(extra[0])}")
        if body.get("params", {}) != {}:
            raise RequestError(
                422, "'params' are not supported: the model is always called with its default parameters"
            )
        rows, where = _rows(model.validator, fmt, body[fmt])
        return Scoring(rows, where, _reply)

    def error(self, status: int, message: str) -> bytes:
        code = _ERROR_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
        return json.dumps({"error_code": code, "message": message}).encode()


def _reply(model: LoadedModel, scores: list[float]) -> Reply:
    return Reply(b'{"predictions":[' + ",".join(map(repr, scores)).encode() + b"]}")


def _rows(v: Validator, fmt: str, data: object) -> tuple[list[list[float]], Callable[[int], str]]:
    if fmt == "dataframe_split":
        return _split(v, data), lambda i: f"dataframe_split.data[{i}]"
    if type(data) is list or fmt == "dataframe_records":
        return v.records(data, fmt), lambda i: f"{fmt}[{i}]"
    if type(data) is not dict:
        raise RequestError(422, f"'{fmt}' must be a list of records or an object mapping features to values")
    if fmt == "inputs" and data and not any(type(x) is list for x in data.values()):
        return [v.row(data, fmt)], lambda i: fmt  # one row: {"f0": 1.0, ...}
    return v.column_rows(data, fmt), lambda i: f"{fmt} row {i}"


def _split(v: Validator, split: object) -> list[list[float]]:
    """pandas orient="split": the column names say which value is which feature."""
    if type(split) is not dict:
        raise RequestError(422, "'dataframe_split' must be an object with 'columns' and 'data'")
    extra = [k for k in split if k not in ("columns", "data", "index")]
    if extra:
        raise RequestError(422, f"dataframe_split: unexpected field {short_repr(extra[0])}")
    if "columns" not in split:
        raise RequestError(
            422, "dataframe_split: 'columns' is required; values are matched to features by column name"
        )
    columns, data = split["columns"], split.get("data")
    if type(columns) is not list or not all(type(c) is str for c in columns):
        raise RequestError(422, "dataframe_split: 'columns' must be a list of feature names")
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise RequestError(422, f"dataframe_split.columns: duplicate column {short_repr(c)}")
        seen.add(c)
    for name in v.names:
        if name not in seen:
            raise RequestError(422, f"dataframe_split.columns: missing feature {name!r}")
    if len(columns) != v.n_features:
        unexpected = next(c for c in columns if c not in set(v.names))
        raise RequestError(422, f"dataframe_split.columns: unexpected feature {short_repr(unexpected)}")
    if type(data) is not list:
        raise RequestError(422, "dataframe_split: 'data' must be a list of rows")
    v.check_count(len(data), "dataframe_split.data")
    index = split.get("index")
    if index is not None and (type(index) is not list or len(index) != len(data)):
        raise RequestError(422, "dataframe_split: 'index' must be a list with one entry per row")
    n = len(columns)
    rows = []
    for i, values in enumerate(data):
        where = f"dataframe_split.data[{i}]"
        if type(values) is not list or len(values) != n:
            got = f"{len(values)} values" if type(values) is list else "not a list"
            raise RequestError(422, f"{where}: must be a list of {n} values, one per column; got {got}")
        rows.append(v.row(dict(zip(columns, values, strict=True)), where))
    return rows
