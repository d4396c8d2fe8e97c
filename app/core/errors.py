"""Errors hookline raises on purpose."""

from __future__ import annotations


class AdapterError(Exception):
    """Base class for errors an adapter raises on purpose."""


class BackendUnavailableError(AdapterError):
    """The backend cannot be reached right now; the API answers 503 and nothing is accepted."""


class CapacityExceededError(AdapterError):
    """The adapter is full (the builtin adapter's bound); the API answers 503."""


class SubscriptionExistsError(AdapterError):
    """A subscription with this id already exists; the API answers 409."""


class ConfigError(Exception):
    """The configuration is invalid; the message is one line that names the key."""
