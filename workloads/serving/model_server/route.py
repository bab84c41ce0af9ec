"""What every scoring route shares with the server, whatever protocol it speaks.

A route reads its protocol's body into rows in the model's column order with the model's Validator
(so every route applies the same value checks), and renders scores and errors in the protocol's own
shapes. Everything in between - request limits, cache, micro-batching, metrics, shadow scoring - is
the server's, the same for every route (model_server/app.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .loader import LoadedModel

JSON = b"application/json"
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Reply:
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = JSON


@dataclass
class Scoring:
    """A parsed request: its rows, how to name row i in an error, and how to answer with the scores."""

    rows: list[list[float]]
    where: Callable[[int], str]
    reply: Callable[[LoadedModel, list[float]], Reply]


class Route(Protocol):
    label: str  # the `route` label of the request metrics, and the path named in messages

    def content_length(self, headers: Headers) -> tuple[int, bool]:
        """Check the request's media type (RequestError 415); (announced length, expects 100-continue)."""
        ...

    def parse(self, raw: bytes, headers: Headers, model: LoadedModel) -> Scoring:
        """The body as rows (RequestError 400/422 naming the problem)."""
        ...

    def error(self, status: int, message: str) -> bytes:
        """The protocol's error body."""
        ...
