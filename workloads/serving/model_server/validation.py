"""Request validation compiled once per model signature.

The validator is built when a model version is loaded, so the per-request work is a tight loop
over precomputed column names and kinds: no schema interpretation, no pydantic, no pandas.
Every rejection names the offending field so a client can fix its request.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_ABS_INT = 2**53  # larger ints cannot be represented exactly as model inputs
# The largest finite float32 (numpy.finfo(numpy.float32).max). ONNX Runtime scores in float32, where a
# larger value becomes infinity; the same bound holds for every runtime so the contract does not depend
# on which one a version happens to load into.
MAX_ABS_FLOAT = 3.4028234663852886e38
_NUMERIC = {"double": "float", "float": "float", "long": "int", "integer": "int", "boolean": "bool"}
_DEFAULT_TYPE = {"float": "double", "int": "long", "bool": "boolean"}


class RequestError(Exception):
    """A client error: carries the HTTP status and a message safe to return."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close  # answer with Connection: close (part of the body was left unread)


def short_repr(name: object) -> str:
    """repr() cut to a length safe to echo in an error message."""
    text = repr(name)
    return text if len(text) <= 66 else text[:63] + "...'"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "float", "int" or "bool"
    type_name: str = ""  # the MLflow signature type (double, float, long, integer, boolean)

    @property
    def mlflow_type(self) -> str:
        return self.type_name or _DEFAULT_TYPE[self.kind]


class Validator:
    """Turns a parsed JSON body into rows of numbers in the model's column order."""

    def __init__(self, columns: list[Column], max_instances: int) -> None:
        if not columns:
            raise ValueError("model signature has no input columns")
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in columns)
        self.kinds = tuple(c.kind for c in columns)
        self._plan = tuple(zip(self.names, self.kinds, strict=True))
        self._name_set = frozenset(self.names)
        self.n_features = len(columns)
        self.max_instances = max_instances

    @classmethod
    def from_signature_inputs(cls, inputs: list[tuple[str, str]], max_instances: int) -> Validator:
        cols = []
        for name, mlflow_type in inputs:
            kind = _NUMERIC.get(mlflow_type)
            if kind is None:
                raise ValueError(f"column {name!r} has type {mlflow_type!r}; only numeric inputs are served")
            cols.append(Column(name, kind, mlflow_type))
        return cls(cols, max_instances)

    def parse(self, body: object) -> tuple[list[list[float]], bool]:
        """Return (rows, single). `single` is True for the `features` form."""
        if type(body) is not dict:
            raise RequestError(422, "body must be a JSON object with a 'features' or 'instances' key")
        if len(body) == 1:
            if "features" in body:
                return [self.row(body["features"], "features")], True
            if "instances" in body:
                return self.rows(body["instances"]), False
        keys = sorted(map(str, body))
        if "features" in body and "instances" in body:
            raise RequestError(422, "give either 'features' or 'instances', not both")
        if "features" in body or "instances" in body:
            extra = [k for k in keys if k not in ("features", "instances")]
            raise RequestError(422, f"unexpected top-level field {short_repr(extra[0])}")
        raise RequestError(422, "body must have a 'features' object or an 'instances' list")

    def rows(self, instances: object) -> list[list[float]]:
        return self.records(instances, "instances")

    def records(self, items: object, field: str) -> list[list[float]]:
        """Rows from a list of objects (`instances`, MLflow's `dataframe_records`); row i is `field[i]`."""
        if type(items) is not list:
            raise RequestError(422, f"'{field}' must be a list of objects")
        self.check_count(len(items), field)
        row = self.row
        return [row(obj, f"{field}[{i}]") for i, obj in enumerate(items)]

    def column_rows(self, mapping: dict, field: str, row_name: str = "") -> list[list[float]]:
        """Rows from {feature: [value per row]}; the same checks as a row, which is named `field row i`
        (or `<row_name>i`)."""
        names = self._name_set
        for name in self.names:
            if name not in mapping:
                raise RequestError(422, f"{field}: missing feature {name!r}")
        extra = sorted(short_repr(k) for k in mapping if k not in names)
        if extra:
            raise RequestError(422, f"{field}: unexpected feature {extra[0]}")
        lengths = {len(v) if type(v) is list else -1 for v in mapping.values()}
        if -1 in lengths:
            bad = next(k for k, v in mapping.items() if type(v) is not list)
            raise RequestError(
                422, f"{field}: feature {short_repr(bad)} must be a list of values, one per row"
            )
        if len(lengths) != 1:
            raise RequestError(
                422, f"{field}: the features have different numbers of values ({sorted(lengths)})"
            )
        n = lengths.pop()
        self.check_count(n, field)
        items = list(mapping.items())
        row = self.row
        prefix = row_name or f"{field} row "
        return [row({k: v[i] for k, v in items}, f"{prefix}{i}") for i in range(n)]

    def values(self, values: list, where: str) -> list[float]:
        """A row given as values in the model's column order (a matrix row)."""
        if len(values) != self.n_features:
            raise RequestError(422, f"{where}: {len(values)} values for {self.n_features} features")
        return self.row(dict(zip(self.names, values, strict=True)), where)

    def check_count(self, n: int, field: str) -> None:
        if n == 0:
            raise RequestError(422, f"'{field}' must not be empty")
        if n > self.max_instances:
            raise RequestError(422, f"'{field}' has {n} rows; the limit is {self.max_instances}")

    def row(self, obj: object, where: str) -> list[float]:
        if type(obj) is not dict:
            raise RequestError(422, f"'{where}' must be an object mapping feature names to numbers")
        out: list[float] = []
        append = out.append
        big = MAX_ABS_FLOAT
        for name, kind in self._plan:
            try:
                v = obj[name]
            except KeyError:
                raise RequestError(422, f"{where}: missing feature {name!r}") from None
            t = type(v)
            if t is float:
                if kind != "float":
                    raise RequestError(422, f"{where}: feature {name!r} must be an integer, got a float")
                if not -big <= v <= big:  # also false for NaN
                    raise RequestError(
                        422,
                        f"{where}: feature {name!r} must be a finite number with |value| <= {big!r}, got {v!r}",
                    )
            elif t is int:
                if kind == "bool":
                    raise RequestError(422, f"{where}: feature {name!r} must be true or false")
                if not -_MAX_ABS_INT <= v <= _MAX_ABS_INT:
                    raise RequestError(
                        422, f"{where}: feature {name!r} is out of range: integers must be within +-2**53"
                    )
                if kind == "float":
                    v = float(v)
            elif t is bool and kind == "bool":
                v = int(v)
            else:
                expected = {"float": "a number", "int": "an integer", "bool": "true or false"}[kind]
                raise RequestError(422, f"{where}: feature {name!r} must be {expected}, got {_json_type(v)}")
            append(v)
        if len(obj) != self.n_features:
            extra = sorted(short_repr(k) for k in obj if k not in self._name_set)
            raise RequestError(
                422,
                f"{where}: unexpected feature {extra[0]}"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
            )
        return out


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__
