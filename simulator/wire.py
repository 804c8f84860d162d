"""What the actors hand to the transport: an HTTP call to a service, or a message for a topic."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from contracts.base import Message
from contracts.topics import SERVICES, topic_for


@dataclass(frozen=True)
class HttpCall:
    service: str
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, service: str, method: str, path: str, body: BaseModel | dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> HttpCall:
        assert service in SERVICES, service
        if isinstance(body, BaseModel):
            body = body.model_dump(mode="json", by_alias=True)
        return cls(service, method, path, body, headers or {})

    def line(self) -> dict[str, Any]:
        return {"kind": "http", "service": self.service, "method": self.method, "path": self.path,
                "headers": self.headers, "body": self.body}


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def reason_code(self) -> str | None:
        return self.body.get("reason_code") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class Publication:
    message: Message

    @property
    def topic(self) -> str:
        return topic_for(self.message).name

    def key(self) -> bytes:
        return topic_for(self.message).key_for(self.message)

    def line(self) -> dict[str, Any]:
        return {"kind": "publish", "topic": self.topic, "key": self.key().decode(),
                "message": json.loads(self.message.model_dump_json())}


@dataclass(frozen=True)
class Published:
    """Where a publication landed (for the consumed-by-every-service barrier)."""

    topic: str
    partition: int
    offset: int
