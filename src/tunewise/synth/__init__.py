"""Synthetic training data with multi-stage in-flight rejection (MSIFR)."""
