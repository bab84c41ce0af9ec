"""gcp components."""
