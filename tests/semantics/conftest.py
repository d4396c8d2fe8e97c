"""Delivery semantics run end to end on every adapter (the service fixtures, reused)."""

from tests.service.conftest import hookline

__all__ = ["hookline"]
