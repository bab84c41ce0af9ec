"""local components."""
