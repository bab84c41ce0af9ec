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
        """Values per key, or None when Redis is unavailable (breaker open or a failure now)."""
        if not self.available:
            return None
        half_open = self._open_until != 0.0
        if half_open:
            self._probing = True
        try:
            if len(keys) == 1:
                values = [await self._redis.get(keys[0])]
            else:
                values = await self._redis.mget(keys)
        except (TimeoutError, RedisError, OSError) as exc:
            self._trip(exc)
            return None
        finally:
            if half_open:
                self._probing = False
        if half_open:
            log.info("redis reachable again; cache enabled")
            self._open_until, self._backoff = 0.0, self._backoff_min
        return values

    def set_many_background(self, items: list[tuple[str, bytes]]) -> None:
        """Fire-and-forget write so the response never waits for Redis."""
        if not items or self._open_until:
            return
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
