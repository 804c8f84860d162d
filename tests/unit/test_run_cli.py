"""`mgrid run` picks the services' event loop from MGRID_EVENT_LOOP: uvloop unless told otherwise."""

from __future__ import annotations

import pytest
import typer

from tools.run_cli import event_loop


def test_the_services_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MGRID_EVENT_LOOP", raising=False)
    assert event_loop() == "uvloop"


def test_asyncio_s_own_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGRID_EVENT_LOOP", "asyncio")
    assert event_loop() == "asyncio"


def test_an_unknown_loop_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGRID_EVENT_LOOP", "trio")
    with pytest.raises(typer.BadParameter, match="MGRID_EVENT_LOOP='trio'"):
        event_loop()
