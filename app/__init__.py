"""hookline: an HTTP message queue with webhook subscribers."""

__version__ = "0.1.0"
