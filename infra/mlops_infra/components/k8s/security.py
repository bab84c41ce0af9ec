"""The Pod Security Standards `restricted` profile as our workloads apply it, written once."""

from __future__ import annotations

from typing import Any


def restricted_pod_security(uid: int, gid: int | None = None) -> dict[str, Any]:
    """Pod-level: a fixed non-root identity (files on volumes owned by it) and the runtime's seccomp profile."""
    group = uid if gid is None else gid
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": group,
        "fsGroup": group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> dict[str, Any]:
    """Container-level: no privilege escalation, no capabilities, nothing written outside mounted volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
