"""The one error shape every failure is answered with."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
)


class ErrorBody(BaseModel):
    """The body of every error: ``{"error": {code, message, details?}}``."""

    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorBody
