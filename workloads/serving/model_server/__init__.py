"""Real-time model server: MLflow alias -> ONNX Runtime (or pyfunc), micro-batching, Redis cache."""

__all__ = ["create_app"]


def create_app(settings=None):  # lazy: keep `import model_server` cheap
    from .app import create_app as _create

    return _create(settings)
