"""Generated contract artefacts, checked in: the AsyncAPI document, one JSON Schema per message, and each
service's OpenAPI document. `mgrid contracts generate` writes them; `mgrid contracts check` (and a
unit test) fails when they drift from the code.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import typer

import contracts
from contracts.topics import SERVICES, TOPICS, TopicSpec

GENERATED = Path(contracts.__file__).parent / "generated"

app = typer.Typer(no_args_is_help=True, help="Generate or check the checked-in contract artefacts.")


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def message_schema(spec: TopicSpec) -> dict[str, Any]:
    schema = spec.message.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
    schema["properties"]["event_type"]["const"] = spec.name
    return schema


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in TOPICS:
        msg_name = spec.message.__name__
        messages[msg_name] = {
            "name": spec.name,
            "title": msg_name,
            "summary": spec.description,
            "contentType": "application/json",
            "payload": {"$ref": f"./schemas/{spec.name}.json"},
            "bindings": {"kafka": {"key": {"type": "string", "description": " or ".join(spec.key_fields)}}},
        }
        channel_id = spec.name.replace(".", "_")
        channels[channel_id] = {
            "address": spec.name,
            "description": spec.description,
            "messages": {msg_name: {"$ref": f"#/components/messages/{msg_name}"}},
            "bindings": {"kafka": {"partitions": spec.partitions, "replicas": 1}},
            # The size budget a write port holds every message of this topic to (contracts/topics.py).
            "x-max-message-bytes": spec.max_bytes,
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"published by {spec.owner}",
        }
        for consumer in spec.consumers:
            operations[f"{consumer}_consumes_{channel_id}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"consumed by {consumer} (consumer group {consumer})",
            }
        for reader in spec.also_read_by:
            operations[f"{reader}_reads_{channel_id}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"read by {reader} outside a consumer group",
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "mgrid: microgrid energy orchestration events",
            "version": "1.0.0",
            "description": "Every topic, keyed by microgrid_id unless stated; one dead-letter topic dlq.<group> "
            "per consumer group carries undecodable or unhandleable records with dlq.* headers.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:59092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def openapi_documents() -> dict[str, dict[str, Any]]:
    from libs.platform.runtime import build_app

    docs: dict[str, dict[str, Any]] = {}
    for service in SERVICES:
        try:
            module = importlib.import_module(f"services.{service}.bootstrap")
        except ModuleNotFoundError:
            continue
        docs[service] = build_app(module.DEFINITION).openapi()
    return docs


def artefacts() -> dict[Path, str]:
    files = {GENERATED / "asyncapi.json": _dump(asyncapi_document())}
    for spec in TOPICS:
        files[GENERATED / "schemas" / f"{spec.name}.json"] = _dump(message_schema(spec))
    for service, doc in openapi_documents().items():
        files[GENERATED / "openapi" / f"{service}.json"] = _dump(doc)
    return files


def drift() -> list[str]:
    """Paths whose checked-in content differs from what the code generates (or that are stale)."""
    wanted = artefacts()
    problems = [str(p.relative_to(GENERATED)) for p, text in wanted.items()
                if not p.exists() or p.read_text() != text]
    existing = set(GENERATED.rglob("*.json")) if GENERATED.exists() else set()
    problems += [f"{p.relative_to(GENERATED)} (stale)" for p in sorted(existing - set(wanted))]
    return problems


@app.command()
def generate() -> None:
    """Write the artefacts under contracts/generated/."""
    wanted = artefacts()
    for stale in (set(GENERATED.rglob("*.json")) if GENERATED.exists() else set()) - set(wanted):
        stale.unlink()
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    typer.echo(f"wrote {len(wanted)} files under {GENERATED}")


@app.command()
def check() -> None:
    """Exit 1 when the checked-in artefacts differ from the code."""
    problems = drift()
    if problems:
        typer.echo("contract artefacts drifted; run `mgrid contracts generate`:\n  " + "\n  ".join(problems))
        raise typer.Exit(1)
    typer.echo("contract artefacts match the code")
