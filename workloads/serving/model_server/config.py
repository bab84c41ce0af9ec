"""Server configuration from environment variables, validated once at start-up.

Every knob is an environment variable so the same image runs in every environment; a bad value
fails fast with one message listing every problem instead of surfacing later as a 500.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_FEATURE_BUCKETS = (-3.0, -2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


class ConfigError(ValueError):
    """Raised with every invalid setting listed, so one restart fixes them all."""


@dataclass(frozen=True)
class Settings:
    mlflow_tracking_uri: str
    model_name: str
    model_alias: str = "champion"
    redis_url: str = ""
    redis_password: str | None = field(default=None, repr=False)
    cache_enabled: bool = True
    cache_ttl_seconds: int = 300
    redis_timeout_seconds: float = 0.05
    redis_budget_seconds: float = 0.005
    redis_backoff_max_seconds: float = 30.0
    shadow_alias: str = ""
    shadow_sample_rate: float = 0.1
    shadow_agreement_threshold: float = 0.5
    latency_slo_seconds: float = 0.05
    poll_interval_seconds: float = 30.0
    max_batch_size: int = 64
    max_queue_rows: int = 2048
    max_body_bytes: int = 1_048_576
    max_drain_bytes: int = 16 * 1_048_576
    body_timeout_seconds: float = 10.0
    max_instances: int = 256
    onnx_enabled: bool = True
    onnx_tolerance: float = 1e-4
    ort_threads: int = 1
    feature_buckets: tuple[float, ...] = DEFAULT_FEATURE_BUCKETS
    model_dir: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    log_level: str = "info"

    @property
    def cache_active(self) -> bool:
        return self.cache_enabled and bool(self.redis_url)

    @property
    def shadow_active(self) -> bool:
        return bool(self.shadow_alias) and self.shadow_sample_rate > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate; raise ConfigError naming every bad variable."""
        env = os.environ if env is None else env
        errors: list[str] = []
        p = _Parser(env, errors)
        tracking = p.str("MLFLOW_TRACKING_URI", required=True)
        if tracking and urlparse(tracking).scheme not in ("http", "https", "file", "sqlite", "databricks"):
            errors.append(f"MLFLOW_TRACKING_URI: unsupported scheme in {tracking!r}")
        redis_url = p.str("REDIS_URL", default="")
        if redis_url and urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
            errors.append("REDIS_URL: must start with redis://, rediss:// or unix://")
        password = env.get("REDIS_PASSWORD") or None
        pw_file = env.get("REDIS_PASSWORD_FILE", "")
        if pw_file:
            if password:
                errors.append("REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set; use one")
            try:
                password = Path(pw_file).read_text().strip() or None
            except OSError as exc:
                errors.append(f"REDIS_PASSWORD_FILE: cannot read {pw_file!r}: {exc.strerror}")
        buckets = p.floats("FEATURE_BUCKETS", DEFAULT_FEATURE_BUCKETS)
        if list(buckets) != sorted(set(buckets)):
            errors.append("FEATURE_BUCKETS: must be strictly increasing")
        level = p.str("LOG_LEVEL", default="info").lower()
        if level not in ("critical", "error", "warning", "info", "debug"):
            errors.append(f"LOG_LEVEL: unknown level {level!r}")
        settings = cls(
            mlflow_tracking_uri=tracking,
            model_name=p.name("MODEL_NAME", required=True),
            model_alias=p.name("MODEL_ALIAS", default="champion"),
            redis_url=redis_url,
            redis_password=password,
            cache_enabled=p.bool("CACHE_ENABLED", True),
            cache_ttl_seconds=p.int("CACHE_TTL_SECONDS", 300, lo=1, hi=30 * 86400),
            redis_timeout_seconds=p.float("REDIS_TIMEOUT_SECONDS", 0.05, lo=0.001, hi=5),
            redis_budget_seconds=p.float("REDIS_BUDGET_SECONDS", 0.005, lo=0.0001, hi=5),
            redis_backoff_max_seconds=p.float("REDIS_BACKOFF_MAX_SECONDS", 30.0, lo=0.1, hi=3600),
            shadow_alias=p.name("SHADOW_ALIAS", default=""),
            shadow_sample_rate=p.float("SHADOW_SAMPLE_RATE", 0.1, lo=0.0, hi=1.0),
            shadow_agreement_threshold=p.float("SHADOW_AGREEMENT_THRESHOLD", 0.5, lo=-1e12, hi=1e12),
            latency_slo_seconds=p.float("LATENCY_SLO_SECONDS", 0.05, lo=0.0001, hi=60),
            poll_interval_seconds=p.float("POLL_INTERVAL_SECONDS", 30.0, lo=0.1, hi=86400),
            max_batch_size=p.int("MAX_BATCH_SIZE", 64, lo=1, hi=65536),
            max_queue_rows=p.int("MAX_QUEUE_ROWS", 2048, lo=1, hi=10_000_000),
            max_body_bytes=p.int("MAX_BODY_BYTES", 1_048_576, lo=64, hi=64 * 1_048_576),
            max_drain_bytes=p.int("MAX_DRAIN_BYTES", 16 * 1_048_576, lo=0, hi=1024 * 1_048_576),
            body_timeout_seconds=p.float("BODY_TIMEOUT_SECONDS", 10.0, lo=0.1, hi=3600),
            max_instances=p.int("MAX_INSTANCES", 256, lo=1, hi=100_000),
            onnx_enabled=p.bool("ONNX_ENABLED", True),
            onnx_tolerance=p.float("ONNX_TOLERANCE", 1e-4, lo=0.0, hi=1.0),
            ort_threads=p.int("ORT_THREADS", 1, lo=1, hi=256),
            feature_buckets=buckets,
            model_dir=p.str("MODEL_DIR", default=""),
            host=p.str("HOST", default="0.0.0.0"),
            port=p.int("PORT", 8080, lo=1, hi=65535),
            workers=p.int("WORKERS", 1, lo=1, hi=256),
            log_level=level,
        )
        if settings.shadow_alias and settings.shadow_alias == settings.model_alias:
            errors.append("SHADOW_ALIAS: must differ from MODEL_ALIAS")
        if errors:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errors))
        return settings


class _Parser:
    """Collects errors instead of raising on the first one."""

    def __init__(self, env: Mapping[str, str], errors: list[str]) -> None:
        self.env, self.errors = env, errors

    def str(self, key: str, default: str = "", required: bool = False) -> str:
        value = self.env.get(key, "").strip()
        if not value:
            if required:
                self.errors.append(f"{key}: required but not set")
            return default
        return value

    def name(self, key: str, default: str = "", required: bool = False) -> str:
        value = self.str(key, default, required)
        if value and (len(value) > 256 or any(c.isspace() or c in "@/:" for c in value)):
            self.errors.append(f"{key}: {value!r} must not contain whitespace, '@', '/' or ':'")
        return value

    def int(self, key: str, default: int, lo: int, hi: int) -> int:
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.errors.append(f"{key}: {raw!r} is not an integer")
            return default
        if not lo <= value <= hi:
            self.errors.append(f"{key}: {value} is outside [{lo}, {hi}]")
        return value

    def float(self, key: str, default: float, lo: float, hi: float) -> float:
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{key}: {raw!r} is not a number")
            return default
        if not math.isfinite(value) or not lo <= value <= hi:
            self.errors.append(f"{key}: {raw} is outside [{lo}, {hi}]")
        return value

    def bool(self, key: str, default: bool) -> bool:
        raw = self.env.get(key, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.errors.append(f"{key}: {raw!r} is not a boolean (true/false)")
        return default

    def floats(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        try:
            values = tuple(float(x) for x in raw.split(","))
        except ValueError:
            self.errors.append(f"{key}: {raw!r} is not a comma-separated list of numbers")
            return default
        if not values or not all(math.isfinite(v) for v in values):
            self.errors.append(f"{key}: values must be finite")
            return default
        return values
