"""Pydantic views of the objects the controller reads and writes (no I/O)."""
