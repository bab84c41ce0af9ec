"""Resolve a registry alias to a model version and load it into the fastest runtime available.

sklearn-flavoured models are converted to ONNX (skl2onnx, input shape from the MLflow signature)
and run by ONNX Runtime; the conversion is verified against the original model's scores on sample
rows and rejected if it drifts beyond a tolerance. Anything else - other flavours, estimators
skl2onnx cannot convert, failed verification - is served through the plain MLflow pyfunc path.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .validation import Validator

log = logging.getLogger("model_server.loader")


class ModelLoadError(RuntimeError):
    """The model version exists but cannot be served (no signature, unsupported inputs, ...)."""


@dataclass
class LoadedModel:
    """An immutable, ready-to-call model version; swapped atomically on alias changes."""

    name: str
    version: str
    alias: str
    runtime: str  # "onnx" or "pyfunc"
    validator: Validator
    predict: Callable[[np.ndarray], np.ndarray]  # float32/64 (n, d) -> float64 (n,)
    run_id: str = ""
    dtype: type = np.float64  # dtype the batcher builds input matrices in
    local_dir: str | None = field(default=None, repr=False)

    def release(self) -> None:
        if self.local_dir:
            shutil.rmtree(self.local_dir, ignore_errors=True)


def resolve_alias(tracking_uri: str, name: str, alias: str) -> tuple[str, str]:
    """Return (version, run_id) the alias points to. Raises on registry errors."""
    from mlflow import MlflowClient

    mv = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(
        name, alias
    )
    return str(mv.version), mv.run_id or ""


def registry_error(exc: BaseException, limit: int = 300) -> str:
    """The root cause of a registry failure, e.g. `ConnectionRefusedError: [Errno 111] Connection refused`.

    MLflow wraps transport errors as `API request to <url> failed with exception <requests error
    <urllib3 error <socket error>>>`: the cause is at the end of a long text. Follow the exception
    chain to its innermost link instead of cutting the outer message.
    """
    root, seen = exc, {id(exc)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    text = f"{type(root).__name__}: {root}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_model(
    tracking_uri: str,
    name: str,
    version: str,
    alias: str,
    *,
    run_id: str = "",
    onnx_enabled: bool = True,
    onnx_tolerance: float = 1e-4,
    ort_threads: int = 1,
    max_instances: int = 256,
    model_dir: str = "",
) -> LoadedModel:
    """Download `models:/<name>/<version>` and build a predictor. Blocking: call off the event loop."""
    import mlflow.artifacts
    from mlflow.models import Model

    local = tempfile.mkdtemp(prefix=f"model-{version}-", dir=model_dir or None)
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=local, tracking_uri=tracking_uri
        )
        meta = Model.load(path)
        columns = _signature_columns(meta)
        onnx_reason = "ONNX disabled by configuration"
        if onnx_enabled and "sklearn" in meta.flavors:
            try:
                predictor, names = _onnx_from_sklearn(path, columns, onnx_tolerance, ort_threads)
                validator = Validator.from_signature_inputs(_ordered(columns, names), max_instances)
                shutil.rmtree(local, ignore_errors=True)
                log.info("model %s v%s (%s): serving with ONNX Runtime", name, version, alias)
                return LoadedModel(name, version, alias, "onnx", validator, predictor, run_id, np.float32)
            except ModelLoadError:
                raise
            except Exception as exc:  # any converter failure falls back to pyfunc
                onnx_reason = f"{type(exc).__name__}: {exc}"
        elif onnx_enabled:
            onnx_reason = f"flavours {sorted(meta.flavors)} have no ONNX conversion"
        validator = Validator.from_signature_inputs(columns, max_instances)
        predictor = _pyfunc_predictor(path, meta, validator)
        log.warning("model %s v%s (%s): serving with pyfunc (%s)", name, version, alias, onnx_reason[:300])
        return LoadedModel(name, version, alias, "pyfunc", validator, predictor, run_id, local_dir=local)
    except ValueError as exc:
        shutil.rmtree(local, ignore_errors=True)
        raise ModelLoadError(str(exc)) from exc
    except BaseException:
        shutil.rmtree(local, ignore_errors=True)
        raise


def _signature_columns(meta) -> list[tuple[str, str]]:
    sig = meta.signature
    if sig is None or sig.inputs is None:
        raise ModelLoadError("model has no input signature; log it with a signature to serve it")
    cols = []
    for spec in sig.inputs.inputs:
        col_type = getattr(spec, "type", None)
        type_name = getattr(col_type, "name", None)
        if spec.name is None or type_name is None:
            raise ModelLoadError("model signature must be column-based with named, typed columns")
        if not getattr(spec, "required", True):
            raise ModelLoadError(f"optional input column {spec.name!r} is not supported")
        cols.append((spec.name, type_name))
    return cols


def _ordered(columns: list[tuple[str, str]], names: list[str] | None) -> list[tuple[str, str]]:
    """Reorder signature columns to the estimator's training order (feature_names_in_)."""
    if names is None:
        return columns
    kinds = dict(columns)
    if set(kinds) != set(names) or len(names) != len(columns):
        raise ModelLoadError(f"signature columns {sorted(kinds)} differ from the model's features {names}")
    return [(n, kinds[n]) for n in names]


def _onnx_from_sklearn(path: str, columns, tolerance: float, threads: int):
    import mlflow.sklearn
    import onnxruntime as ort
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = mlflow.sklearn.load_model(path)
    names = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in names] if names is not None else None
    cols = _ordered(columns, names)
    n = len(cols)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    classifier = hasattr(final, "predict_proba")
    options = {type(final): {"zipmap": False}} if classifier else None
    onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, n]))], options=options)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in sess.get_outputs()]
    out_name = (
        "probabilities" if classifier and "probabilities" in outputs else outputs[-1 if classifier else 0]
    )
    if classifier and len(getattr(final, "classes_", [])) != 2:
        raise ModelLoadError("only binary classifiers and regressors are supported (score = P(class 1))")
    col = 1 if classifier else 0
    run, in_name, out = sess.run, "input", [out_name]

    def predict(x: np.ndarray) -> np.ndarray:
        res = run(out, {in_name: x.astype(np.float32, copy=False)})[0]
        return res[:, col] if res.ndim == 2 else res

    # verify the conversion on deterministic sample rows before trusting it
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(256, n)).astype(np.float32)
    frame = pd.DataFrame(sample, columns=[c for c, _ in cols]) if names is not None else sample
    expected = model.predict_proba(frame)[:, 1] if classifier else np.ravel(model.predict(frame))
    got = predict(sample).astype(np.float64).ravel()
    err = float(np.max(np.abs(got - expected)))
    if not err <= tolerance:
        raise ValueError(f"ONNX output differs from sklearn by {err:.2e} > {tolerance:.0e}")
    return (lambda x: predict(x).astype(np.float64, copy=False).ravel()), [c for c, _ in cols]


def _pyfunc_predictor(path: str, meta, validator: Validator):
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(path)
    names = list(validator.names)
    dtypes = {c.name: {"float": "float64", "int": "int64", "bool": "bool"}[c.kind] for c in validator.columns}
    # sklearn models fall back here too: score with predict_proba so both runtimes return the same thing
    raw = None
    if "sklearn" in meta.flavors:
        try:
            raw = model.get_raw_model()
        except Exception:
            raw = None
    proba = getattr(raw, "predict_proba", None)

    def predict(x: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(x, columns=names).astype(dtypes)
        out = proba(frame) if proba is not None else model.predict(frame)
        arr = np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[:, 1] if arr.shape[1] == 2 else arr[:, 0]
        return arr.ravel()

    return predict
