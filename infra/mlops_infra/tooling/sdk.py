"""The Pulumi SDK internals the offline engine needs, in one adapter: everything from `pulumi.runtime` that is
not public API (mocks, RPC (de)serialisation, the settings singleton, the program runner). When an SDK
release moves them, this module is the one to change; CI runs the suite on the lowest SDK pyproject allows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import resource as _resource
from pulumi.runtime import rpc as _rpc
from pulumi.runtime.settings import SETTINGS as _SETTINGS
from pulumi.runtime.settings import set_root_resource as _set_root_resource
from pulumi.runtime.stack import run_pulumi_func as _run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

Mocks = _mocks.Mocks
MockMonitor = _mocks.MockMonitor
MockResourceArgs = _mocks.MockResourceArgs
MockCallArgs = _mocks.MockCallArgs
UNKNOWN = _rpc.UNKNOWN


def is_secret(value: Any) -> bool:
    return bool(_rpc.is_rpc_secret(value))


def unwrap_secret(value: Any) -> Any:
    return _rpc.unwrap_rpc_secret(value)


def secret(value: Any) -> Any:
    """A value a mock returns as a secret output (e.g. a generated password)."""
    return _rpc.wrap_rpc_secret(value)


def deserialize(struct: Any) -> Any:
    """A registration's protobuf properties as Python values, unknowns and secrets kept as markers."""
    return _rpc.deserialize_properties(struct, keep_unknowns=True)


@contextlib.contextmanager
def no_stack_traces() -> Iterator[None]:
    """Registrations without the declaring stack trace. The engine uses it to show where in the program a
    resource was declared; offline nothing reads it, and walking the stack for every registration takes about
    a tenth of an evaluation. Restored on exit; a no-op on an SDK without the hook."""
    original = getattr(_resource, "_get_stack_trace", None)
    stack_trace_type = getattr(getattr(_resource, "source_pb2", None), "StackTrace", None)
    if original is None or stack_trace_type is None:
        yield
        return
    _resource._get_stack_trace = stack_trace_type
    try:
        yield
    finally:
        _resource._get_stack_trace = original


def _ensure_event_loop() -> None:
    """Pulumi's runtime makes its futures on the thread's current event loop; an `asyncio.run()` earlier in
    the same process (a web client, a notebook, another test) leaves none behind."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    program: Callable[[], Mapping[str, Any] | None],
    mocks: Any,
    monitor: Any,
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str],
    on_output: Callable[[str, Any, bool], None],
) -> None:
    """Run a Pulumi program to completion against `monitor` (preview off, so apply callbacks run), then hand
    each exported output to `on_output(name, value, is_secret)`."""
    _ensure_event_loop()
    _set_root_resource(None)  # type: ignore[arg-type]
    _mocks.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), secret_keys=secret_keys)

    def run() -> Any:
        outputs = program() or {}
        wrapped = {k: pulumi.Output.from_input(v) for k, v in outputs.items()}

        async def collect() -> None:
            for key, out in wrapped.items():
                on_output(key, await out.future(with_unknowns=True), await out.is_secret())

        return _sync_await(collect())

    _SETTINGS.rpc_manager.clear()
    _SETTINGS.outputs.clear()
    _sync_await(_run_pulumi_func(run))
