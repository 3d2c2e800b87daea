"""Operator settings, from the environment (LUME_OPERATOR_*, plus Prefect's own PREFECT_API_URL)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """What the chart (or a test) tells the operator; every field is LUME_OPERATOR_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="LUME_OPERATOR_", extra="ignore")

    # Empty: every namespace (a ClusterRole); otherwise only these (Roles in each).
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The pool of Flows that name none: the chart's Kubernetes pool, created by the chart's worker.
    default_work_pool: str = "lume-kubernetes"
    # Safety net behind Prefect's event stream: re-check every Flow this often.
    resync_seconds: float = Field(default=300.0, gt=0)
    # How often a running FlowRun's state is read from Prefect.
    flowrun_poll_seconds: float = Field(default=3.0, gt=0)
    # Parallel requests towards Prefect. Its SQLite backend serialises writes anyway: more writers only
    # contend for its lock, and the losers get 503 (retried) instead of a faster answer.
    max_concurrency: int = Field(default=2, ge=1)
    # Longest wait between retries while Prefect is unreachable.
    max_backoff_seconds: float = Field(default=60.0, gt=0)
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    # Follow Prefect's deployment events to repair drift within seconds.
    follow_events: bool = True

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
