"""Adaptive micro-batching.

No timer: when the runtime is idle, whatever arrived during the current event-loop tick is sent at
once; while the runtime is busy, new requests queue and go together in the next batch (up to
MAX_BATCH_SIZE rows). Under light load that is batch size 1 with no added wait; under heavy load
batches grow by themselves and inference cost per row falls. The queue is bounded in rows: when it
is full the caller gets QueueFull (-> 503 with Retry-After) instead of unbounded latency.

Inference of a batch that costs more than INLINE_BELOW_SECONDS runs on one dedicated thread (ONNX Runtime
releases the GIL), so the event loop keeps parsing and validating the next requests meanwhile. A cheaper batch
runs inline on the event loop: on a saturated host the hand-off to the thread and back costs more than the
inference and widens the tail (measured with a 50-tree forest: 1 s p99 windows up to 51 ms threaded, 2-5 ms
inline). The cost per row is learnt per model from the batches it ran, the first on the thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .loader import LoadedModel

# A batch expected to score within this runs inline on the event loop; a dearer one on the inference thread.
INLINE_BELOW_SECONDS = 0.001


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
        self._row_seconds: dict[int, float] = {}  # id(model) -> smoothed inference seconds per row

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
        loop = self._loop
        per_row = self._row_seconds.get(id(model))
        if per_row is not None and per_row * len(rows) <= INLINE_BELOW_SECONDS:
            cf: ThreadFuture = ThreadFuture()
            try:
                cf.set_result(self._timed(model, x))
            except Exception as exc:
                cf.set_exception(exc)
            loop.call_soon(self._done, batch, cf)  # not nested: the next dispatch starts from the loop
            return
        cf = self._executor.submit(self._timed, model, x)
        cf.add_done_callback(lambda f: loop.call_soon_threadsafe(self._done, batch, f))

    def _timed(self, model: LoadedModel, x: np.ndarray) -> np.ndarray:
        """model.predict(x), learning the model's cost per row (a plain dict write: safe from the thread)."""
        start = time.perf_counter()
        scores = model.predict(x)
        sample = (time.perf_counter() - start) / max(1, len(x))
        before = self._row_seconds.get(id(model))
        self._row_seconds[id(model)] = sample if before is None else 0.8 * before + 0.2 * sample
        return scores

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
