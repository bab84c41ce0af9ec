"""Drift-triggered retraining workload: validate, detect drift, train, evaluate, register, promote."""

__version__ = "0.1.0"
