"""Builders for the Redis tests: the shared adapter-level ones."""

from __future__ import annotations

from tests.adapter_helpers import dlq_entry, make_msg, make_sub, publish, receive_n

__all__ = ["dlq_entry", "make_msg", "make_sub", "publish", "receive_n"]
