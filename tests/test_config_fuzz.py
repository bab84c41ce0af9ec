"""Any JSON value at any key of a real stack file: the loader either accepts the stack or reports problems
(file, key path, value, what is allowed), never another exception; the CLI exits 0 or 2, never a traceback."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_infra.platform.config import ConfigError, load_stack

from plan_support import REFERENCE_STACKS, load_stack_doc

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["", " ", "dev", "prod", "gpu", ":cloud:", "[bold]x[/bold]", "1.33", "0.0.0.0/0", "x" * 500]
    ),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a stack file's config (dict keys and list indices), leaves and containers."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*prefix, i))
    return found


DOCS = {stack: load_stack_doc(stack)["config"] for stack in REFERENCE_STACKS}
PATHS = sorted({(stack, path) for stack, doc in DOCS.items() for path in _paths(doc)}, key=str)


def _set(config: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(PATHS),
    value=JSON_VALUES,
    extra=st.one_of(st.none(), st.tuples(st.text(max_size=12), JSON_VALUES)),
)
def test_any_value_at_any_key_is_accepted_or_reported(
    tmp_path: Path, where: tuple[str, tuple[Any, ...]], value: Any, extra: Any
) -> None:
    stack, path = where
    config = copy.deepcopy(DOCS[stack])
    _set(config, path, value)
    if extra is not None:  # an unknown or duplicate-looking key next to it
        key, other = extra
        config[f"mlops-platform:{key}"] = other
    file = tmp_path / f"Pulumi.{stack}.yaml"
    file.write_text(yaml.safe_dump({"config": config}))
    try:
        load_stack(file)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            line = str(problem)
            assert line.startswith(f"{file}: ") and ": got " in line and "\n" not in line
            assert len(line) < 2000


def test_the_cli_reports_a_mapping_where_an_enum_is_expected(tmp_path: Path) -> None:
    doc = load_stack_doc("dev")
    doc["config"]["mlops-platform:environment"] = {"a": 1}
    doc["config"]["mlops-platform:nodeGroups"][0]["role"] = {"a": 1}
    file = tmp_path / "Pulumi.weird.yaml"
    file.write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [sys.executable, "-m", "mlops_infra.tooling.cli", "validate", str(file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"{file}: mlops-platform:environment: got {{\"a\": 1}}: allowed: 'dev', 'test' or 'prod'"
        in result.stderr
    )
    assert f'{file}: mlops-platform:nodeGroups[0].role: got {{"a": 1}}: allowed:' in result.stderr
