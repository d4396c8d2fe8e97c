"""Bodies of the operations endpoints: liveness and readiness."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)


class HealthOut(BaseModel):
    """Liveness."""

    status: str


class ReadyOut(BaseModel):
    """Readiness: the backend answers."""

    status: str
    adapter: str
    auth: str
    reason: str | None = Field(None, description="Why not ready (absent when ready).")
