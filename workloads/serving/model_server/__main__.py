"""`python -m model_server`: validate the environment, then run uvicorn (uvloop + httptools)."""

from __future__ import annotations

import os
import sys

from .config import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"model_server: {exc}", file=sys.stderr)
        return 2
    # MLflow's HTTP client retries for minutes by default; the poller retries on its own schedule.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import uvicorn

    from .app import configure_logging, create_app

    configure_logging(settings.log_level)

    kwargs = dict(
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    if settings.workers > 1:
        # separate processes: each loads the model and has its own metrics registry
        uvicorn.run("model_server.app:create_app", factory=True, workers=settings.workers, **kwargs)
    else:
        uvicorn.run(create_app(settings), **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
