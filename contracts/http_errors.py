"""The body of every HTTP error, in the spec's "Error and Status Semantics" shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.enums import ReasonCode

# The spec's table: the fields each status must carry besides reason_code. They are always present in
# the body for that status (null when not applicable, e.g. a 409 alias ambiguity has no versions).
FIELDS_BY_STATUS: dict[int, tuple[str, ...]] = {
    409: ("expected_version", "actual_version"),
    422: ("violated_rule", "details"),
    503: ("missing_inputs", "safe_action_taken"),
}


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason_code: ReasonCode
    message: str
    # 409: topology/policy version conflict or alias ambiguity
    expected_version: int | None = None
    actual_version: int | None = None
    # 422: validation failure
    violated_rule: str | None = None
    details: Any = None
    # 503: insufficient telemetry with no valid fallback
    missing_inputs: list[str] | None = None
    safe_action_taken: str | None = None

    def body_for(self, status_code: int) -> dict[str, Any]:
        """JSON body: the status's spec fields always, other optional fields only when set."""
        body = self.model_dump(mode="json", exclude_none=True)
        for field in FIELDS_BY_STATUS.get(status_code, ()):
            body.setdefault(field, None)
        return body


def business_422(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of a route whose 422 is also a business verdict the spec prescribes
    (a tree rule, an envelope rule, an unresolvable alias), not only a malformed request: a schema-valid
    request may be refused with it. `description` names the rules (`violated_rule`, `reason_code`)."""
    return {422: {"model": ErrorResponse, "description": description}}
