"""MLflow 3 model registry: register candidates, aliases (champion/challenger), promotion, rollback.

Stages are deprecated; the alias ``champion`` is what serving loads (``models:/<name>@champion``).
Champion history lives in registered-model tags (``previous_champion`` and the JSON list
``champion_history``) so ``rollback`` can walk back more than one step.

Serialisation: skops, with the trusted-type list computed from the model at logging time and
checked against an allow-list of module prefixes.  When *we* load a champion we recompute the
untrusted types from the file and check them against the same allow-list, instead of trusting
the list stored in the model's own MLmodel file.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
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

    def history(self, name: str) -> list[str]:
        raw = self.model_tags(name).get(HISTORY_TAG, "[]")
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
        """Point ``champion`` at ``version``; remember the one it replaces.  Returns that one."""
        previous = self.alias_version(name, CHAMPION)
        if previous == version:
            return previous
        if previous is not None:
            hist = [*self.history(name), previous]
            self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(hist))
            self.client.set_registered_model_tag(name, PREVIOUS_TAG, previous)
            self.client.set_model_version_tag(name, previous, "replaced_by", version)
        self.client.set_registered_model_alias(name, CHAMPION, version)
        if self.alias_version(name, CHALLENGER) == version:
            self.client.delete_registered_model_alias(name, CHALLENGER)
        return previous

    def rollback(self, name: str) -> tuple[str, str]:
        """Re-point ``champion`` to the previous champion; returns (from_version, to_version)."""
        current = self.alias_version(name, CHAMPION)
        hist = self.history(name)
        if current is None:
            raise RegistryError(f"model {name!r} has no champion to roll back")
        if not hist:
            raise RegistryError(
                f"model {name!r}: no previous champion recorded (tag {HISTORY_TAG!r} is empty)"
            )
        target = hist.pop()
        self.client.set_registered_model_alias(name, CHAMPION, target)
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(hist))
        self.client.set_registered_model_tag(name, PREVIOUS_TAG, hist[-1] if hist else "")
        self.client.set_model_version_tag(name, current, "rolled_back", "true")
        self.client.set_model_version_tag(name, target, "restored_from", current)
        return current, target
