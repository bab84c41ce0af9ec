"""aws components."""
