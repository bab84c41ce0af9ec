"""Promotion and rollback survive the registry dying before (or right after) each of their writes.

The registry is the real MLflow server of the session; ``crash_proxy`` stands in front of it and
dies at the n-th registry write (see conftest.CrashProxy).  For every write of each operation:
the crash leaves a state no reader is misled by (the champion alias is the old or the new one,
and the history claims nothing the alias does not show), and after the restart a retry
converges to exactly the state of an uninterrupted run, without acting twice.
"""

from __future__ import annotations

import itertools
import json
import signal
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from retrain_job.cli import main
from retrain_job.registry import CHALLENGER, CHAMPION, HISTORY_TAG, PREVIOUS_TAG, Registry, RegistryError

OPERATION_TAG = "champion_operation"  # documented in docs/retraining.md

WRITES = {"promote": 7, "rollback": 7}  # registry writes of one uninterrupted operation
_names = itertools.count()
VERSION_TAGS = ("replaced_by", "rolled_back", "restored_from")


def _versions(client: MlflowClient, name: str, count: int, tags: dict[str, str] | None = None) -> None:
    """Registered versions without artifacts: aliases and tags are all these tests touch."""
    client.create_registered_model(name, tags=tags)
    run = client.create_run(experiment_id="0")
    for _ in range(count):
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, await_creation_for=0
        )


def _model(client: MlflowClient) -> str:
    """v1..v4; v3 is champion after v1 and v2 (history [1, 2]), v4 is the challenger."""
    name = f"crash-{next(_names)}"
    _versions(client, name, 4, {HISTORY_TAG: json.dumps(["1", "2"]), PREVIOUS_TAG: "2"})
    client.set_registered_model_alias(name, CHAMPION, "3")
    client.set_registered_model_alias(name, CHALLENGER, "4")
    return name


def _state(client: MlflowClient, name: str) -> dict[str, Any]:
    model = client.get_registered_model(name)
    versions = {
        mv.version: {k: t for k, t in mv.tags.items() if k in VERSION_TAGS}
        for mv in client.search_model_versions(f"name = '{name}'")
    }
    return {
        "aliases": dict(model.aliases),
        "history": json.loads(model.tags.get(HISTORY_TAG, "[]")),
        "previous": model.tags.get(PREVIOUS_TAG),
        "operation": json.loads(model.tags[OPERATION_TAG]) if OPERATION_TAG in model.tags else None,
        "version_tags": {v: t for v, t in versions.items() if t},
    }


BEFORE = {
    "aliases": {CHAMPION: "3", CHALLENGER: "4"},
    "history": ["1", "2"],
    "previous": "2",
    "operation": None,
    "version_tags": {},
}
AFTER = {
    "promote": {
        "aliases": {CHAMPION: "4"},
        "history": ["1", "2", "3"],
        "previous": "3",
        "operation": {"op": "promote", "from": "3", "to": "4", "history": ["1", "2", "3"], "state": "done"},
        "version_tags": {"3": {"replaced_by": "4"}},
    },
    "rollback": {
        "aliases": {CHAMPION: "2", CHALLENGER: "4"},
        "history": ["1"],
        "previous": "1",
        "operation": {"op": "rollback", "from": "3", "to": "2", "history": ["1"], "state": "done"},
        "version_tags": {"2": {"restored_from": "3"}, "3": {"rolled_back": "true"}},
    },
}


def _operate(op: str, uri: str, name: str) -> None:
    reg = Registry(uri)
    if op == "promote":
        reg.promote(name, "4")
    else:
        reg.rollback(name)


def _assert_not_misleading(state: dict[str, Any], op: str) -> None:
    """What any reader sees right after the crash, before anyone repairs anything."""
    champion = state["aliases"][CHAMPION]
    assert champion in {BEFORE["aliases"][CHAMPION], AFTER[op]["aliases"][CHAMPION]}
    if champion == BEFORE["aliases"][CHAMPION]:  # the operation did not happen: the history says so
        assert (state["history"], state["previous"]) == (BEFORE["history"], BEFORE["previous"])
    else:  # it happened: complete, or its pending record is there for the next run to finish
        assert state["operation"]["state"] == "pending" or state == AFTER[op]


def test_every_write_is_covered(mlflow_server: str, crash_proxy) -> None:
    """The crash matrix below covers each write; a new write must extend WRITES."""
    client = MlflowClient(mlflow_server)
    name = _model(client)
    for op in ("promote", "rollback"):
        start = len(crash_proxy.writes)
        _operate(op, crash_proxy.url, name)
        assert len(crash_proxy.writes) - start == WRITES[op], crash_proxy.writes[start:]
    assert _state(client, name)["aliases"][CHAMPION] == "3"  # promote 4, then back to 3


@pytest.mark.parametrize("mode", ["before", "after"])
@pytest.mark.parametrize(("op", "n"), [(op, n) for op, count in WRITES.items() for n in range(1, count + 1)])
def test_crash_at_each_write_then_retry_converges(
    mlflow_server: str, crash_proxy, capsys, op: str, n: int, mode: str
) -> None:
    client = MlflowClient(mlflow_server)
    name = _model(client)
    crash_proxy.arm(n, mode)
    with pytest.raises((MlflowException, OSError, RegistryError)):  # requests' errors are OSErrors
        _operate(op, crash_proxy.url, name)
    assert crash_proxy.crashed_on and crash_proxy.down
    crashed = _state(client, name)
    _assert_not_misleading(crashed, op)

    crash_proxy.restart()
    if op == "rollback":  # the operator retries; only a crash after the very last write needs --from
        last_write_done = (n, mode) == (WRITES["rollback"], "after")
        capsys.readouterr()
        args = ["rollback", "--model", name, "--tracking-uri", crash_proxy.url]
        assert main(args + (["--from", "3"] if last_write_done else [])) == 0
        out = capsys.readouterr().out
        if last_write_done:
            expected = "was already rolled back"
        elif crashed["aliases"][CHAMPION] == "2":
            expected = "finished the interrupted rollback"
        else:
            expected = "rolled back"
        assert expected in out and "v3 -> v2" in out
    else:
        _operate(op, crash_proxy.url, name)
    assert _state(client, name) == AFTER[op]  # converged, and a rollback never ran twice


@pytest.mark.parametrize("n", range(1, WRITES["promote"] + 1))
def test_rollback_after_a_crashed_promotion_undoes_the_real_last_promotion(
    mlflow_server: str, crash_proxy, capsys, n: int
) -> None:
    client = MlflowClient(mlflow_server)
    name = _model(client)
    crash_proxy.arm(n, "before")
    with pytest.raises((MlflowException, OSError, RegistryError)):
        _operate("promote", crash_proxy.url, name)
    moved = _state(client, name)["aliases"][CHAMPION] == "4"
    crash_proxy.restart()
    capsys.readouterr()
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url]) == 0
    out = capsys.readouterr().out
    state = _state(client, name)
    if moved:  # v4 went live: rolling back returns to v3
        assert "champion v4 -> v3" in out
        assert (state["aliases"][CHAMPION], state["history"]) == ("3", ["1", "2"])
    else:  # v4 never went live: rolling back undoes v2 -> v3
        assert "champion v3 -> v2" in out
        assert (state["aliases"][CHAMPION], state["history"]) == ("2", ["1"])
    assert state["operation"]["state"] == "done"


def _is_champion_alias_write(path: str, body: bytes) -> bool:
    return path.endswith("/registered-models/alias") and json.loads(body or b"{}").get("alias") == CHAMPION


def test_crash_before_the_alias_write_then_rollback_refuses_the_no_op(
    mlflow_server: str, crash_proxy, capsys
) -> None:
    """The reported bug: v1 champion, promoting v2 dies before the alias moves, then rollback
    used to print "champion v1 -> v1" and exit 0 having done nothing."""
    client = MlflowClient(mlflow_server)
    name = f"first-{next(_names)}"
    _versions(client, name, 2)
    Registry(crash_proxy.url).promote(name, "1")
    crash_proxy.arm(when=_is_champion_alias_write)
    with pytest.raises((MlflowException, OSError)):
        Registry(crash_proxy.url).promote(name, "2")
    assert crash_proxy.crashed_on and '"version": "2"' in crash_proxy.crashed_on
    crash_proxy.restart()
    capsys.readouterr()
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url]) == 1
    out, err = capsys.readouterr()
    assert "v1 -> v1" not in out + err
    assert "nothing to roll back to: champion is v1 and no earlier champion is recorded" in err
    state = client.get_registered_model(name)
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    assert json.loads(state.tags.get(HISTORY_TAG, "[]")) == []
    assert OPERATION_TAG not in state.tags  # the promotion that never happened was discarded


def test_history_left_by_an_older_release_is_not_trusted(mlflow_server: str, crash_proxy, capsys) -> None:
    """Registries already in the broken state (history ends with the champion itself)."""
    client = MlflowClient(mlflow_server)
    name = f"legacy-{next(_names)}"
    _versions(client, name, 2)
    client.set_registered_model_alias(name, CHAMPION, "1")
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(["1"]))
    client.set_registered_model_tag(name, PREVIOUS_TAG, "1")
    start = len(crash_proxy.writes)
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url]) == 1
    err = capsys.readouterr().err
    assert "last 'champion_history' entry was v1 itself: a promotion that never happened" in err
    assert crash_proxy.writes[start:] == []  # a refusal writes nothing
    # promoting from that state does not record v1 twice
    assert Registry(crash_proxy.url).promote(name, "2") == "1"
    assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == ["1"]


def test_alias_write_that_does_not_stick_is_detected(mlflow_server: str, crash_proxy) -> None:
    """Verify after write: the server acknowledges the alias move but keeps the old champion."""
    client = MlflowClient(mlflow_server)
    name = _model(client)
    assert _state(client, name) == BEFORE
    crash_proxy.arm(when=_is_champion_alias_write, mode="lie")
    with pytest.raises(RegistryError, match="champion reads v3 right after it was set to v4"):
        Registry(crash_proxy.url).promote(name, "4")
    after_lie = _state(client, name)
    assert after_lie["operation"]["state"] == "pending"  # only the intent is recorded, history untouched
    assert {**after_lie, "operation": None} == BEFORE
    Registry(crash_proxy.url).promote(name, "4")
    assert _state(client, name) == AFTER["promote"]


def test_alias_moved_by_hand_during_a_pending_operation_is_refused(mlflow_server: str, crash_proxy) -> None:
    client = MlflowClient(mlflow_server)
    name = _model(client)
    crash_proxy.arm(2, "before")  # dies at the alias write: the intent 3 -> 4 stays recorded
    with pytest.raises((MlflowException, OSError)):
        Registry(crash_proxy.url).promote(name, "4")
    crash_proxy.restart()
    client.set_registered_model_alias(name, CHAMPION, "1")  # someone fixes things by hand
    with pytest.raises(RegistryError, match="the alias was moved outside retrain_job"):
        Registry(crash_proxy.url).rollback(name)
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"


def test_failed_rollback_says_how_to_retry_and_a_plain_retry_would_roll_back_again(
    mlflow_server: str, crash_proxy, capsys
) -> None:
    """The registry dies right after the last write: the rollback happened, the client saw an error.

    Only an explicit ``--from`` can tell a retry from a new rollback, so the error says to use it.
    """
    client = MlflowClient(mlflow_server)
    name = _model(client)
    crash_proxy.arm(WRITES["rollback"], "after")
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url]) == 1
    err = capsys.readouterr().err
    assert f"retry with `rollback --model {name} --from 3`" in err and "Traceback" not in err
    crash_proxy.restart()
    assert _state(client, name) == AFTER["rollback"]
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url, "--from", "3"]) == 0
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url, "--from", "3"]) == 0
    assert _state(client, name) == AFTER["rollback"]
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url, "--from", "4"]) == 1
    assert "champion is v2, not v4; nothing rolled back" in capsys.readouterr().err
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url, "--from", "v2"]) == 2
    # without --from a rollback is a new one: it walks further back, as documented
    assert main(["rollback", "--model", name, "--tracking-uri", crash_proxy.url]) == 0
    assert _state(client, name)["aliases"][CHAMPION] == "1"


def test_real_server_killed_at_the_alias_write(own_mlflow_server, make_crash_proxy, capsys) -> None:
    """The same crash with the real server SIGKILLed (its own server: the session's must live).

    Checks the simulation's premise: what the registry holds after a kill and a restart on the
    same database is exactly what the client had written before the kill.
    """
    server = own_mlflow_server
    proxy = make_crash_proxy(server.uri)
    client = MlflowClient(server.uri)
    name = _model(client)
    proxy.arm(when=_is_champion_alias_write, on_crash=lambda: server.stop(signal.SIGKILL))
    with pytest.raises((MlflowException, OSError)):
        Registry(proxy.url).promote(name, "4")
    assert server.proc is None and proxy.down
    server.wait()  # same port, same database
    proxy.restart()
    state = _state(client, name)
    assert state["aliases"][CHAMPION] == "3" and state["history"] == ["1", "2"]
    assert state["operation"] == {
        "op": "promote",
        "from": "3",
        "to": "4",
        "history": ["1", "2", "3"],
        "state": "pending",
    }
    assert main(["rollback", "--model", name, "--tracking-uri", proxy.url, "--from", "3"]) == 0
    assert f"rolled back {name}: champion v3 -> v2" in capsys.readouterr().out
    Registry(proxy.url).promote(name, "4")
    assert _state(client, name)["aliases"] == {CHAMPION: "4"}
