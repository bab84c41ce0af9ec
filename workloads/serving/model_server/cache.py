"""Redis cache-aside with a circuit breaker.

A cache must never make serving worse: commands use short timeouts and no retries, and after a
failure the breaker stays open (exponential back-off up to a cap) so a dead Redis costs nothing per
request. After the back-off one request probes; success closes the breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("model_server.cache")


class RedisCache:
    def __init__(
        self, url: str, password: str | None, ttl: int, timeout: float, backoff_max: float, prefix: str
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
        self.prefix = prefix
        self._backoff_min = min(0.5, backoff_max)
        self._backoff_max = backoff_max
        self._backoff = self._backoff_min
        self._open_until = 0.0
        self._probing = False
        self._tasks: set[asyncio.Task] = set()
        self._get_queue: list[tuple[list[str], asyncio.Future]] = []
        self._get_busy = False
        self._set_queue: list[tuple[str, bytes]] = []
        self._set_scheduled = False

    def key(self, version: str, canonical: str) -> str:
        digest = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
        return f"{self.prefix}:{version}:{digest}"

    @property
    def available(self) -> bool:
        """False while the breaker is open (callers skip Redis entirely)."""
        if self._open_until == 0.0:
            return True
        return not (self._probing or time.monotonic() < self._open_until)

    async def get_many(self, keys: list[str]) -> list[bytes | None] | None:
        """Values per key, or None when Redis is unavailable (breaker open or a failure now).

        Look-ups from concurrent requests are coalesced: while one MGET is in flight, new keys
        queue and go together in the next MGET, so Redis and redis-py costs are paid per batch.
        """
        if not self.available:
            return None
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._get_queue.append((keys, fut))
        if not self._get_busy:
            self._get_busy = True
            loop.call_soon(self._start_get)
        return await fut

    def _start_get(self) -> None:
        batch, self._get_queue = self._get_queue, []
        if not batch:
            self._get_busy = False
            return
        task = asyncio.get_running_loop().create_task(self._mget(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mget(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        keys = [k for ks, _ in batch for k in ks]
        half_open = self._open_until != 0.0
        values: list | None
        try:
            if half_open and (self._probing or time.monotonic() < self._open_until):
                values = None  # breaker opened while these were queued
            else:
                self._probing = half_open
                values = await self._redis.mget(keys)
                if half_open:
                    log.info("redis reachable again; cache enabled")
                    self._open_until, self._backoff = 0.0, self._backoff_min
        except (TimeoutError, RedisError, OSError) as exc:
            self._trip(exc)
            values = None
        finally:
            if half_open:
                self._probing = False
            start = 0
            for ks, fut in batch:
                if not fut.done():
                    fut.set_result(None if values is None else values[start : start + len(ks)])
                start += len(ks)
            self._start_get()  # next batch (or idle)

    def set_many_background(self, items: list[tuple[str, bytes]]) -> None:
        """Fire-and-forget write, coalesced per event-loop tick; the response never waits for it."""
        if not items or self._open_until:
            return
        self._set_queue.extend(items)
        if not self._set_scheduled:
            self._set_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_set)

    def _start_set(self) -> None:
        self._set_scheduled = False
        items, self._set_queue = self._set_queue, []
        task = asyncio.get_running_loop().create_task(self._set_many(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_many(self, items: list[tuple[str, bytes]]) -> None:
        try:
            if len(items) == 1:
                await self._redis.set(items[0][0], items[0][1], ex=self.ttl)
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for k, v in items:
                        pipe.set(k, v, ex=self.ttl)
                    await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            self._trip(exc)

    def _trip(self, exc: BaseException) -> None:
        if self._open_until == 0.0:
            log.warning(
                "redis unavailable (%s); serving uncached, retrying in %.1fs",
                type(exc).__name__,
                self._backoff,
            )
        else:
            self._backoff = min(self._backoff * 2, self._backoff_max)
        self._open_until = time.monotonic() + self._backoff

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):  # closing a broken connection must not fail shutdown
            await self._redis.aclose()
