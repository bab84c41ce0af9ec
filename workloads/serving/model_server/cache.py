"""Redis cache-aside with a latency budget and a circuit breaker.

A cache must never make serving worse:
- a request waits for a look-up at most REDIS_BUDGET_SECONDS, then goes on uncached: a frozen Redis
  (a hung host: connections accepted, nothing answered) costs a request the budget, not the socket
  timeout;
- a command that fails or hits its socket timeout opens the breaker: no request touches Redis until
  a background PING succeeds, first after 0.5 s, then after doubling back-offs up to a cap. While
  open, look-ups cost nothing and no request ever waits on a probe;
- on opening, the idle pooled connections are dropped: after a Redis restart they are all dead, and
  with no retries each would fail once and re-open the breaker (one flap per stale connection).
  Commands that were already in flight when the breaker opened fail or finish on their own; their
  failures are not counted again.
Writes are fire-and-forget, bounded by the socket timeout, and never delay a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("model_server.cache")

_FAILURES = (TimeoutError, RedisError, OSError)


def _abandon(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class RedisCache:
    def __init__(
        self,
        url: str,
        password: str | None,
        ttl: int,
        timeout: float,
        budget: float,
        backoff_max: float,
        prefix: str,
    ) -> None:
        self._redis = Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            max_connections=64,
        )
        self.ttl = ttl
        self.budget = budget
        self.prefix = prefix
        self._backoff_min = min(0.5, backoff_max)
        self._backoff_max = backoff_max
        self._backoff = self._backoff_min
        self.open = False
        self.trips = 0  # times the breaker opened (exported for tests and logs)
        self._generation = 0  # bumped on every opening: failures of older commands are not news
        self._tasks: set[asyncio.Task] = set()
        self._get_queue: list[tuple[list[str], asyncio.Future]] = []
        self._get_busy = False
        self._set_queue: list[tuple[str, bytes]] = []
        self._set_scheduled = False

    def start(self) -> None:
        """Open the first connection now rather than inside the first request's budget."""
        self._spawn(self._connect())

    async def _connect(self) -> None:
        generation = self._generation
        try:
            await self._redis.ping()
        except _FAILURES as exc:
            self._failed(exc, generation)

    def keys(self, version: str, rows: list[list[float]], dtype: type) -> list[str]:
        """One key per row: a digest of the row as the runtime sees it (model column order, in the dtype it
        scores in: float32 for ONNX Runtime, float64 for pyfunc). Key order and spelling in the request do
        not matter, so the same row hits the same entry through every route and format, and `0.1` in JSON
        and the float32 0.1 of a binary tensor are one entry where the model cannot tell them apart."""
        prefix = f"{self.prefix}:{version}:"
        blake2b = hashlib.blake2b
        return [
            prefix + blake2b(r.tobytes(), digest_size=16).hexdigest() for r in np.asarray(rows, dtype=dtype)
        ]

    async def get_many(self, keys: list[str]) -> list[bytes | None] | None:
        """Values per key, or None when Redis is unavailable or slower than the budget.

        Look-ups from concurrent requests are coalesced: while one MGET is in flight, new keys
        queue and go together in the next MGET, so Redis and redis-py costs are paid per batch.
        """
        if self.open:
            return None
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._get_queue.append((keys, fut))
        if not self._get_busy:
            self._get_busy = True
            loop.call_soon(self._start_get)
        timer = loop.call_later(self.budget, _abandon, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def _start_get(self) -> None:
        batch = [item for item in self._get_queue if not item[1].done()]  # skip abandoned waiters
        self._get_queue = []
        if not batch or self.open:
            for _, fut in batch:
                _abandon(fut)
            self._get_busy = False
            return
        self._spawn(self._mget(batch))

    async def _mget(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        keys = [k for ks, _ in batch for k in ks]
        generation = self._generation
        values: list | None = None
        try:
            values = await self._redis.mget(keys)
        except _FAILURES as exc:
            self._failed(exc, generation)
        finally:
            start = 0
            for ks, fut in batch:
                if not fut.done():
                    fut.set_result(None if values is None else values[start : start + len(ks)])
                start += len(ks)
            self._start_get()  # next batch (or idle)

    def set_many_background(self, items: list[tuple[str, bytes]]) -> None:
        """Fire-and-forget write, coalesced per event-loop tick; the response never waits for it."""
        if not items or self.open:
            return
        self._set_queue.extend(items)
        if not self._set_scheduled:
            self._set_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_set)

    def _start_set(self) -> None:
        self._set_scheduled = False
        items, self._set_queue = self._set_queue, []
        if items and not self.open:
            self._spawn(self._set_many(items))

    async def _set_many(self, items: list[tuple[str, bytes]]) -> None:
        generation = self._generation
        try:
            if len(items) == 1:
                await self._redis.set(items[0][0], items[0][1], ex=self.ttl)
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for k, v in items:
                        pipe.set(k, v, ex=self.ttl)
                    await pipe.execute()
        except _FAILURES as exc:
            self._failed(exc, generation)

    def _failed(self, exc: BaseException, generation: int) -> None:
        """Open the breaker, unless it already opened since this command started."""
        if self.open or generation != self._generation:
            return
        self.open = True
        self.trips += 1
        self._generation += 1
        self._backoff = self._backoff_min
        log.warning(
            "redis unavailable (%s: %s); serving uncached, probing in %.1fs",
            type(exc).__name__,
            str(exc)[:200],
            self._backoff,
        )
        self._spawn(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        # every idle pooled connection predates the failure; after a restart all of them are dead
        with contextlib.suppress(Exception):
            await self._redis.connection_pool.disconnect(inuse_connections=False)
        failed = 0
        while True:
            await asyncio.sleep(self._backoff)
            try:
                await self._redis.ping()
            except _FAILURES:
                failed += 1
                self._backoff = min(self._backoff * 2, self._backoff_max)
                continue
            break
        self._backoff = self._backoff_min
        self._generation += 1  # commands from before the outage are not counted against the new period
        self.open = False
        log.info("redis reachable again after %d failed probe(s); cache enabled", failed)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):  # closing a broken connection must not fail shutdown
            await self._redis.aclose()
