"""The stored result document, its JSON-able reference, and the canonical unique hash."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from lume_platform.errors import ResultEncodingError
from lume_platform.results.encoding import decode_value, encode_value

# Fields that make a result unique: the same flow with the same inputs and outputs is one result,
# whatever its tags, run id or creation time (LUME-services' `unique_on`, minus the Prefect 1 flow id).
UNIQUE_ON = ("flow_name", "inputs", "outputs")

DEFAULT_RESULT_TYPE = "generic"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(data: Any) -> str:
    """Serialise already-encoded ``data`` so that equal values always give the same text."""
    try:
        return _CANONICAL.encode(data)
    except ValueError as error:
        raise ResultEncodingError(f"cannot serialise canonically: {error}") from error


def compute_unique_hash(flow_name: str, encoded_inputs: Any, encoded_outputs: Any) -> str:
    """SHA-256 of the canonical JSON of the flow name and the *encoded* inputs and outputs."""
    text = canonical_json({"flow_name": flow_name, "inputs": encoded_inputs, "outputs": encoded_outputs})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_utc_milliseconds(moment: datetime) -> datetime:
    """Aware UTC time truncated to milliseconds, the precision BSON dates keep on every backend.

    A naive datetime is taken to be UTC already.
    """
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def _utc_now() -> datetime:
    return to_utc_milliseconds(datetime.now(UTC))


def _current_prefect_run() -> tuple[str | None, str | None]:
    """(flow name, flow run id) of the Prefect flow run we are in, without importing Prefect."""
    context_module = sys.modules.get("prefect.context")
    if context_module is None:
        return None, None
    context = context_module.FlowRunContext.get()
    if context is None:
        return None, None
    flow_name = context.flow.name if context.flow is not None else None
    flow_run_id = str(context.flow_run.id) if context.flow_run is not None else None
    return flow_name, flow_run_id


class Result(BaseModel):
    """One stored result of a flow run.

    ``inputs`` and ``outputs`` may hold JSON values, numpy arrays and scalars, pandas DataFrames and
    Series, datetimes and bytes (see :mod:`lume_platform.results.encoding`). Inside a Prefect flow run,
    ``flow_name`` and ``flow_run_id`` default to the current run's. ``unique_hash`` is computed from
    ``flow_name``, ``inputs`` and ``outputs``.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    flow_name: str = Field(min_length=1)
    flow_run_id: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    created: datetime = Field(default_factory=_utc_now)
    result_type: str = Field(default=DEFAULT_RESULT_TYPE, min_length=1)
    unique_hash: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_from_prefect_run(cls, data: Any) -> Any:
        if isinstance(data, dict) and (not data.get("flow_name") or "flow_run_id" not in data):
            flow_name, flow_run_id = _current_prefect_run()
            data = dict(data)
            if not data.get("flow_name") and flow_name:
                data["flow_name"] = flow_name
            if "flow_run_id" not in data:
                data["flow_run_id"] = flow_run_id
        return data

    @field_validator("created")
    @classmethod
    def _normalise_created(cls, value: datetime) -> datetime:
        return to_utc_milliseconds(value)

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _decode_encoded_values(cls, value: Any) -> Any:
        # Accept the JSON form too (what `model_dump(mode="json")` gives and the stores hold).
        return decode_value(value) if isinstance(value, dict) else value

    @field_serializer("inputs", "outputs", when_used="json")
    def _encode_values(self, value: dict[str, Any]) -> Any:
        # Arrays and frames as in the stores, so a Result is JSON (e.g. a persisted Prefect result).
        return encode_value(value)

    @model_validator(mode="after")
    def _fill_unique_hash(self) -> Result:
        if not self.unique_hash:
            inputs = encode_value(self.inputs, "inputs")
            outputs = encode_value(self.outputs, "outputs")
            self.unique_hash = compute_unique_hash(self.flow_name, inputs, outputs)
        return self

    def ref(self) -> ResultRef:
        """The reference that finds this result again once it is stored."""
        return ResultRef(unique_hash=self.unique_hash, flow_name=self.flow_name, result_type=self.result_type)

    def get(self, attribute_index: list[str | int] | tuple[str | int, ...]) -> Any:
        """The value at ``attribute_index``: ``["outputs", "y", 0]`` is ``self.outputs["y"][0]``.

        Raises
        ------
        KeyError
            Naming the first step of the index that does not exist.
        """
        if not attribute_index:
            return self
        first, *rest = attribute_index
        if not isinstance(first, str) or first not in type(self).model_fields:
            known = ", ".join(type(self).model_fields)
            raise KeyError(f"result has no attribute {first!r} (attributes: {known})")
        value: Any = getattr(self, first)
        for depth, step in enumerate(rest, start=1):
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError) as error:
                path = ".".join(str(s) for s in attribute_index[: depth + 1])
                raise KeyError(f"result has no value at {path}") from error
        return value


class ResultRef(BaseModel):
    """A small JSON document that finds one stored result; pass it between tasks and flows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unique_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    flow_name: str
    result_type: str = DEFAULT_RESULT_TYPE
