"""POST /predict: the server's own protocol.

{"features": {name: value, ...}} for one row or {"instances": [{...}, ...]} for several; answers
{"model", "model_version", "prediction"} or {..., "predictions": [...]}, errors {"error": message}.
"""

from __future__ import annotations

import json

from .loader import LoadedModel
from .request import content_length, parse_json
from .route import Headers, Reply, Scoring


class PredictRoute:
    label = "/predict"

    def __init__(self, model_name: str) -> None:
        self._model_name = json.dumps(model_name)
        self._prefixes: dict[str, bytes] = {}  # model version -> the constant start of every answer

    def content_length(self, headers: Headers) -> tuple[int, bool]:
        return content_length(headers)

    def parse(self, raw: bytes, headers: Headers, model: LoadedModel) -> Scoring:
        rows, single = model.validator.parse(parse_json(raw))
        return Scoring(
            rows, _single_where if single else _instance_where, self._single if single else self._batch
        )

    def error(self, status: int, message: str) -> bytes:
        return json.dumps({"error": message}).encode()

    def _prefix(self, model: LoadedModel) -> bytes:
        prefix = self._prefixes.get(model.version)
        if prefix is None:
            prefix = self._prefixes[model.version] = (
                '{"model":' + self._model_name + ',"model_version":' + json.dumps(model.version)
            ).encode()
        return prefix

    def _single(self, model: LoadedModel, scores: list[float]) -> Reply:
        return Reply(self._prefix(model) + b',"prediction":' + repr(scores[0]).encode() + b"}")

    def _batch(self, model: LoadedModel, scores: list[float]) -> Reply:
        return Reply(self._prefix(model) + b',"predictions":[' + ",".join(map(repr, scores)).encode() + b"]}")


def _single_where(i: int) -> str:
    return "features"


def _instance_where(i: int) -> str:
    return f"instances[{i}]"
