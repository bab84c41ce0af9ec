"""Alertmanager webhook receiver: a firing alert naming a model creates a training Job.

Validates the Alertmanager webhook payload (version "4"); malformed input gets a 4xx with a
reason, never a 500.  A bearer token is required unless explicitly disabled, and an optional
model allow-list keeps attacker-chosen label values from turning into Jobs.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .k8s import LaunchResult, valid_model_name

MAX_BODY = 1 << 20  # 1 MiB; Alertmanager truncates large groups itself
ALERT_STATUSES = {"firing", "resolved"}

Launch = Callable[[str, str, str], LaunchResult]


def validate_payload(body: Any) -> list[str]:
    """Problems with an Alertmanager v4 webhook payload (empty list = valid)."""
    if not isinstance(body, dict):
        return ["payload must be a JSON object"]
    errors = []
    if body.get("version") != "4":
        errors.append(f'version must be "4", got {body.get("version")!r}')
    if body.get("status") not in ALERT_STATUSES:
        errors.append(f"status must be firing or resolved, got {body.get('status')!r}")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if key in body and not isinstance(body[key], dict):
            errors.append(f"{key} must be an object")
    alerts = body.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        errors.append("alerts must be a non-empty list")
        return errors
    for i, a in enumerate(alerts):
        if not isinstance(a, dict):
            errors.append(f"alerts[{i}] must be an object")
            continue
        if a.get("status") not in ALERT_STATUSES:
            errors.append(f"alerts[{i}].status must be firing or resolved, got {a.get('status')!r}")
        labels = a.get("labels")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            errors.append(f"alerts[{i}].labels must be an object of strings")
        if "annotations" in a and not isinstance(a["annotations"], dict):
            errors.append(f"alerts[{i}].annotations must be an object")
    return errors


def create_app(
    launch: Launch,
    token: str | None,
    allowed_models: set[str] | None = None,
    model_label: str = "model",
) -> Starlette:
    """``token=None`` disables authentication (the CLI only allows that when asked explicitly)."""

    async def alerts(request: Request) -> JSONResponse:
        if token is not None:
            auth = request.headers.get("authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        ctype = request.headers.get("content-type", "")
        if "json" not in ctype:
            return JSONResponse({"error": f"content-type must be application/json, got {ctype!r}"}, 415)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return JSONResponse({"error": f"body larger than {MAX_BODY} bytes"}, status_code=413)
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                return JSONResponse({"error": f"body larger than {MAX_BODY} bytes"}, status_code=413)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"invalid JSON: {exc}"}, status_code=400)
        errors = validate_payload(body)
        if errors:
            return JSONResponse({"error": "invalid Alertmanager payload", "details": errors}, status_code=422)

        jobs: list[dict[str, Any]] = []
        ignored: list[dict[str, str]] = []
        seen: set[str] = set()
        for a in body["alerts"]:
            labels = a["labels"]
            alertname = labels.get("alertname", "?")
            model = labels.get(model_label) or body.get("commonLabels", {}).get(model_label)
            if a["status"] != "firing":
                ignored.append({"alert": alertname, "reason": "alert is resolved"})
            elif not model:
                ignored.append({"alert": alertname, "reason": f"no {model_label!r} label"})
            elif not valid_model_name(model):
                ignored.append({"alert": alertname, "reason": f"invalid model name {model[:64]!r}"})
            elif allowed_models is not None and model not in allowed_models:
                ignored.append({"alert": alertname, "reason": f"model {model!r} not in the allow-list"})
            elif model in seen:
                ignored.append({"alert": alertname, "reason": f"model {model!r} already handled"})
            else:
                seen.add(model)
                try:
                    res = await run_in_threadpool(launch, model, "alert", f"alertmanager: {alertname}")
                except Exception as exc:  # never a bare 500: report it, Alertmanager retries on 502
                    res = LaunchResult("error", None, f"{type(exc).__name__}: {exc}")
                jobs.append({"model": model, "alert": alertname, **res.as_dict()})
        failed = [j for j in jobs if j["status"] == "error"]
        # 502 makes Alertmanager retry later (the Kubernetes API failed, not the request).
        return JSONResponse({"jobs": jobs, "ignored": ignored}, status_code=502 if failed else 200)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/alerts", alerts, methods=["POST"]),
            Route("/", alerts, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
