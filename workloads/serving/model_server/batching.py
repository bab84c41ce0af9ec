"""Adaptive micro-batching.

No timer: when the runtime is idle, whatever arrived during the current event-loop tick is sent at
once; while the runtime is busy, new requests queue and go together in the next batch (up to
MAX_BATCH_SIZE rows). Under light load that is batch size 1 with no added wait; under heavy load
batches grow by themselves and inference cost per row falls. The queue is bounded in rows: when it
is full the caller gets QueueFull (-> 503 with Retry-After) instead of unbounded latency.

Inference runs on one dedicated thread (ONNX Runtime releases the GIL), so the event loop keeps
parsing and validating the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .loader import LoadedModel


class QueueFull(Exception):
    pass


class MicroBatcher:
    def __init__(
        self,
        max_batch: int,
        max_queue_rows: int,
        executor: ThreadPoolExecutor,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_queue_rows = max_queue_rows
        self._executor = executor
        self._on_batch = on_batch
        self._pending: deque[tuple[LoadedModel, list[list[float]], asyncio.Future]] = deque()
        self._pending_rows = 0
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued_rows(self) -> int:
        return self._pending_rows

    def submit(self, model: LoadedModel, rows: list[list[float]]) -> asyncio.Future:
        """Queue rows for `model`; the future resolves to a float64 array of scores."""
        if self._pending_rows + len(rows) > self.max_queue_rows and self._pending:
            raise QueueFull
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((model, rows, fut))
        self._pending_rows += len(rows)
        if not self._busy:
            self._busy = True
            loop.call_soon(self._dispatch)  # end of this tick: batch everything already parsed
        return fut

    def _dispatch(self) -> None:
        pending = self._pending
        if not pending:
            self._busy = False
            return
        model = pending[0][0]
        batch = []
        rows: list[list[float]] = []
        while (
            pending
            and pending[0][0] is model
            and (not rows or len(rows) + len(pending[0][1]) <= self.max_batch)
        ):
            item = pending.popleft()
            if item[2].done():  # caller gave up (disconnect/cancel): skip the work
                self._pending_rows -= len(item[1])
                continue
            batch.append(item)
            rows.extend(item[1])
        self._pending_rows -= len(rows)
        if not batch:
            self._dispatch()
            return
        x = np.array(rows, dtype=model.dtype)
        if self._on_batch is not None:
            self._on_batch(len(rows))
        cf = self._executor.submit(model.predict, x)
        loop = self._loop
        cf.add_done_callback(lambda f: loop.call_soon_threadsafe(self._done, batch, f))

    def _done(self, batch, cf: ThreadFuture) -> None:
        try:
            scores = cf.result()
            total = sum(len(rows) for _, rows, _ in batch)
            if len(scores) != total:
                raise RuntimeError(f"model returned {len(scores)} scores for {total} rows")
        except Exception as exc:
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            start = 0
            for _, rows, fut in batch:
                end = start + len(rows)
                if not fut.done():
                    fut.set_result(scores[start:end])
                start = end
        self._dispatch()
