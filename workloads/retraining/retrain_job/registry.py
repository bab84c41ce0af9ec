"""MLflow 3 model registry: register candidates, aliases (champion/challenger), promotion, rollback.

Stages are deprecated; the alias ``champion`` is what serving loads (``models:/<name>@champion``).
Champion history lives in registered-model tags (``previous_champion`` and the JSON list
``champion_history``) so ``rollback`` can walk back more than one step.

Promotion and rollback are several registry writes with no transaction around them, so they
are ordered to survive a crash between any two (see ``_Operation``): the intent is recorded
first, the ``champion`` alias (the only thing serving reads) moves next and is read back, and
the history is written only after the alias has moved.  Whoever runs next finishes or discards
an interrupted operation before doing anything else, so the history never claims a promotion
that did not happen and a retry converges instead of acting twice.

Serialisation: skops, with the trusted-type list computed from the model at logging time and
checked against an allow-list of module prefixes.  When *we* load a champion we recompute the
untrusted types from the file and check them against the same allow-list, instead of trusting
the list stored in the model's own MLmodel file.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import skops.io
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from .drift import ReferenceBins

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
PREVIOUS_TAG = "previous_champion"
OPERATION_TAG = "champion_operation"
REFERENCE_FILE = "reference_bins.json"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class RegistryError(RuntimeError):
    """A registry operation that cannot proceed (message is user-facing)."""


def trusted_types_for(model: Any) -> list[str]:
    """Types skops must trust to load this model; refuses anything outside the allow-list."""
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    _check_trusted(untrusted)
    return sorted(untrusted)


def _check_trusted(types: list[str]) -> None:
    bad = [t for t in types if not t.startswith(TRUSTED_PREFIXES)]
    if bad:
        raise RegistryError(f"model contains types outside the skops allow-list {TRUSTED_PREFIXES}: {bad}")


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")]


@dataclass
class Registered:
    version: str
    run_id: str
    model_uri: str


@dataclass(frozen=True)
class _Operation:
    """A promotion or rollback, recorded in the ``champion_operation`` tag before any other write.

    Write order: (1) this record, state ``pending``; (2) the ``champion`` alias, read back;
    (3) ``champion_history`` and ``previous_champion``; (4) informational version tags and the
    ``challenger`` alias; (5) this record, state ``done``.  A crash leaves a pending record; the
    next promote or rollback finishes the operation when the alias already points at ``to``
    (steps 3-5 are idempotent) and discards it when the alias is still at ``source`` (then
    nothing else was written).  The done record lets a retried ``rollback --from V`` see that
    its rollback already happened.
    """

    op: str  # "promote" | "rollback"
    source: str | None  # champion before (None: first promotion)
    to: str
    history: tuple[str, ...]  # champion_history once the operation is complete
    state: str = "pending"  # "pending" | "done"

    def to_json(self) -> str:
        return json.dumps(
            {
                "op": self.op,
                "from": self.source,
                "to": self.to,
                "history": list(self.history),
                "state": self.state,
            }
        )

    @classmethod
    def parse(cls, name: str, raw: str) -> _Operation:
        try:
            d = json.loads(raw)
            op = cls(d["op"], d["from"], str(d["to"]), tuple(str(v) for v in d["history"]), d["state"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"model {name!r}: tag {OPERATION_TAG!r} is unreadable ({raw!r}); inspect the champion alias"
                f" and {HISTORY_TAG!r}, then delete the tag"
            ) from exc
        if op.op not in {"promote", "rollback"} or op.state not in {"pending", "done"}:
            raise RegistryError(f"model {name!r}: tag {OPERATION_TAG!r} is unreadable ({raw!r})")
        return op

    def describe(self) -> str:
        return f"{self.op} v{self.source} -> v{self.to}"


@dataclass(frozen=True)
class RollbackResult:
    source: str
    to: str
    status: str  # "rolled_back" | "finished" (an interrupted rollback completed) | "already_done"


class Registry:
    def __init__(self, tracking_uri: str) -> None:
        if not tracking_uri:
            raise RegistryError("no MLflow tracking URI: pass --tracking-uri or set MLFLOW_TRACKING_URI")
        self.tracking_uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)

    # -- lookups -------------------------------------------------------------------------------------
    def alias_version(self, name: str, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
                return None
            raise

    def model_tags(self, name: str) -> dict[str, str]:
        try:
            return dict(self.client.get_registered_model(name).tags)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def history(self, name: str, tags: dict[str, str] | None = None) -> list[str]:
        raw = (self.model_tags(name) if tags is None else tags).get(HISTORY_TAG, "[]")
        try:
            hist = json.loads(raw)
        except json.JSONDecodeError:
            return []
        return [str(v) for v in hist] if isinstance(hist, list) else []

    def load_model(self, name: str, version: str) -> Any:
        """Download a version and load it with skops, trusting only allow-listed types."""
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=tmp))
            conf = yaml.safe_load((local / "MLmodel").read_text())
            sk = conf.get("flavors", {}).get("sklearn", {})
            if sk.get("serialization_format") != "skops":
                raise RegistryError(
                    f"{name} v{version} is serialised as {sk.get('serialization_format')!r};"
                    " only skops is loaded"
                )
            path = local / sk["pickled_model"]
            untrusted = skops.io.get_untrusted_types(file=str(path))
            _check_trusted(untrusted)
            return skops.io.load(str(path), trusted=untrusted)

    def load_reference(self, name: str, version: str) -> ReferenceBins | None:
        """The frozen drift bins shipped inside the model (``extra_files/reference_bins.json``)."""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(
                    f"models:/{name}/{version}/extra_files/{REFERENCE_FILE}", dst_path=tmp
                )
                return ReferenceBins.load(local)
        except (MlflowException, OSError):
            return None

    # -- writes --------------------------------------------------------------------------------------
    def log_candidate(
        self,
        name: str,
        model: Any,
        example: pd.DataFrame,
        reference: ReferenceBins,
        params: dict[str, Any],
        metrics: dict[str, float],
        artifacts: dict[str, Any],
        experiment: str,
        tags: dict[str, str],
    ) -> Registered:
        """One MLflow run: params, metrics, reports; the model with signature, example and drift bins."""
        mlflow.set_experiment(experiment)
        trusted = trusted_types_for(model)
        signature = infer_signature(example, model.predict_proba(example)[:, 1])
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(tags=tags) as run:
            ref_path = Path(tmp) / REFERENCE_FILE
            reference.save(ref_path)
            mlflow.log_params(params)
            mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # drop NaN
            mlflow.log_artifact(str(ref_path), artifact_path="drift")
            for fname, payload in artifacts.items():
                mlflow.log_dict(payload, f"reports/{fname}")
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example.head(5),
                registered_model_name=name,
                serialization_format="skops",
                skops_trusted_types=trusted,
                extra_files=[str(ref_path)],
                # explicit: MLflow's inference spawns a Python process that reloads the model (slow)
                pip_requirements=_pip_requirements(),
            )
        version = str(info.registered_model_version)
        return Registered(version=version, run_id=run.info.run_id, model_uri=f"models:/{name}/{version}")

    def tag_version(self, name: str, version: str, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_model_version_tag(name, version, k, str(v))

    def set_challenger(self, name: str, version: str) -> None:
        self.client.set_registered_model_alias(name, CHALLENGER, version)

    def promote(self, name: str, version: str) -> str | None:
        """Point ``champion`` at ``version``; returns the champion it replaced.

        Idempotent: promoting the current champion again changes nothing (after finishing an
        interrupted operation, if one is recorded).
        """
        champion, hist, _, _ = self._recover(name)
        if hist and hist[-1] == champion:
            hist = hist[:-1]  # an older release's crashed promotion left the champion on top
        if champion == version:
            return hist[-1] if hist else None
        after = (*hist, champion) if champion is not None else tuple(hist)
        self._apply(name, _Operation("promote", champion, version, after))
        return champion

    def rollback(self, name: str, expect: str | None = None) -> RollbackResult:
        """Re-point ``champion`` to the previous champion.

        A rollback that was interrupted after its alias moved is finished, not repeated.
        ``expect``: act only when the champion is this version; if the rollback from it already
        happened (the latest recorded operation), report that and change nothing.  That makes a
        retry act at most once even when the failed attempt had completed.  Refuses
        (RegistryError) when no earlier champion is recorded, instead of doing nothing and
        reporting success.
        """
        champion, hist, last, finished_now = self._recover(name)
        if champion is None:
            raise RegistryError(f"model {name!r} has no champion to roll back")
        done_from = (
            last.source if last is not None and last.op == "rollback" and last.to == champion else None
        )
        if done_from is not None and finished_now and expect in (None, done_from):
            return RollbackResult(done_from, champion, "finished")
        if expect is not None and champion != expect:
            if done_from == expect:
                return RollbackResult(expect, champion, "already_done")
            raise RegistryError(
                f"model {name!r}: champion is v{champion}, not v{expect}; nothing rolled back"
            )
        note = ""
        if hist and hist[-1] == champion:  # an older release's crashed promotion left the champion on top
            hist = hist[:-1]
            note = (
                f" (the last {HISTORY_TAG!r} entry was v{champion} itself: a promotion that never happened)"
            )
        if not hist:
            raise RegistryError(
                f"model {name!r}: nothing to roll back to: champion is v{champion} and no earlier champion"
                f" is recorded{note}; champion left unchanged"
            )
        target = hist[-1]
        if target == champion:
            raise RegistryError(f"model {name!r}: rollback v{champion} -> v{target} would change nothing")
        try:
            self.client.get_model_version(name, target)
        except MlflowException as exc:
            raise RegistryError(
                f"model {name!r}: cannot roll back to v{target}: {exc.message}; champion left at v{champion}"
            ) from exc
        self._apply(name, _Operation("rollback", champion, target, tuple(hist[:-1])))
        return RollbackResult(champion, target, "rolled_back")

    # -- crash-safe operations -------------------------------------------------------------------------
    def _apply(self, name: str, op: _Operation) -> None:
        self.client.set_registered_model_tag(name, OPERATION_TAG, op.to_json())
        self.client.set_registered_model_alias(name, CHAMPION, op.to)
        seen = self.alias_version(name, CHAMPION)
        if seen != op.to:
            raise RegistryError(
                f"model {name!r}: champion reads v{seen} right after it was set to v{op.to}; the registry did"
                f" not keep the write. Nothing else was changed; the next promote or rollback resolves"
                f" the pending {op.describe()}"
            )
        self._finish(name, op)

    def _finish(self, name: str, op: _Operation) -> None:
        """Everything after the alias move; each write is idempotent, the done record goes last."""
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(list(op.history)))
        self.client.set_registered_model_tag(name, PREVIOUS_TAG, op.history[-1] if op.history else "")
        if op.op == "promote":
            if op.source is not None:
                self.client.set_model_version_tag(name, op.source, "replaced_by", op.to)
            if self.alias_version(name, CHALLENGER) == op.to:
                self.client.delete_registered_model_alias(name, CHALLENGER)
        elif op.source is not None:
            self.client.set_model_version_tag(name, op.source, "rolled_back", "true")
            self.client.set_model_version_tag(name, op.to, "restored_from", op.source)
        self.client.set_registered_model_tag(name, OPERATION_TAG, replace(op, state="done").to_json())

    def _recover(self, name: str) -> tuple[str | None, list[str], _Operation | None, bool]:
        """(champion, history, the latest completed operation, whether this call completed it),
        after resolving an interrupted operation.

        An operation whose alias move happened is finished; one whose alias move did not is
        discarded (nothing but its record was written).  Any other champion means someone moved
        the alias by hand while an operation was pending: refuse rather than guess.
        """
        tags = self.model_tags(name)
        champion = self.alias_version(name, CHAMPION)
        raw = tags.get(OPERATION_TAG)
        op = _Operation.parse(name, raw) if raw is not None else None
        if op is None or op.state == "done":
            return champion, self.history(name, tags), op, False
        if champion == op.to:
            self._finish(name, op)
            return champion, list(op.history), op, True
        if champion == op.source:
            self.client.delete_registered_model_tag(name, OPERATION_TAG)
            return champion, self.history(name, tags), None, False
        raise RegistryError(
            f"model {name!r}: an interrupted {op.describe()} is recorded in tag {OPERATION_TAG!r}, but"
            f" champion is v{champion}: the alias was moved outside retrain_job. Check"
            f" {HISTORY_TAG!r}, then delete tag {OPERATION_TAG!r}"
        )
