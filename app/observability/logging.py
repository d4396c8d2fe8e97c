"""Log set-up: plain text for people, or one JSON object per line for collectors.

Every record gets the trace id of the span it was logged in (so a log line of an API
request joins its trace), and every record is passed through :func:`redact` on the way
out, so a URL with credentials, a signing secret or a bearer token never reaches a log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from opentelemetry import trace

from app.core.redact import redact

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the current span unless the call set its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate, never drop."""
        if getattr(record, "trace_id", None) is None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = trace.format_trace_id(context.trace_id)
                record.span_id = trace.format_span_id(context.span_id)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields, strings redacted."""
    return {
        key: redact(value) if isinstance(value, str) else value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with every ``extra=`` field at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record."""
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the message followed by the ``extra=`` fields."""
        base = redact(super().format(record))
        extras = [f"{k}={v}" for k, v in _extras(record).items() if v is not None]
        return f"{base} {' '.join(extras)}" if extras else base


def build_handler(stream: IO[str], json_format: bool = False) -> logging.Handler:
    """A handler writing hookline's format (text or JSON) to ``stream``."""
    handler = logging.StreamHandler(stream)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(TraceContextFilter())
    return handler


def setup_logging(level: str = "info", json_format: bool = False) -> None:
    """Configure the root logger once, for ``hookline serve``."""
    root = logging.getLogger()
    root.handlers[:] = [build_handler(sys.stderr, json_format)]
    root.setLevel(level.upper())
