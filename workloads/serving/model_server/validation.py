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
        # positions of the columns in sorted-name order, for canonical cache keys
        self.sorted_index = tuple(sorted(range(len(columns)), key=lambda i: self.names[i]))

    @classmethod
    def from_signature_inputs(cls, inputs: list[tuple[str, str]], max_instances: int) -> Validator:
        cols = []
        for name, mlflow_type in inputs:
            kind = _NUMERIC.get(mlflow_type)
            if kind is None:
                raise ValueError(f"column {name!r} has type {mlflow_type!r}; only numeric inputs are served")
            cols.append(Column(name, kind))
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
        if type(instances) is not list:
            raise RequestError(422, "'instances' must be a list of objects")
        if not instances:
            raise RequestError(422, "'instances' must not be empty")
        if len(instances) > self.max_instances:
            raise RequestError(
                422, f"'instances' has {len(instances)} rows; the limit is {self.max_instances}"
            )
        row = self.row
        return [row(obj, f"instances[{i}]") for i, obj in enumerate(instances)]

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

    def canonical(self, row: list[float]) -> str:
        """Stable text for a row: features in sorted-name order, shortest round-trip float repr."""
        names = self.names
        return ";".join(f"{names[i]}={row[i]!r}" for i in self.sorted_index)


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
