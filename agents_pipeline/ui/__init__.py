"""The ui domain."""
