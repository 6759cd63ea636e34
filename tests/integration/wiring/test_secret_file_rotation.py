"""Rotated secret files reach the services that use them, without a restart.

ServiceNow (basic auth over real HTTP, tests/fakes/servicenow.py) and the database (a new
connection after the URL file changed) are wired the way `serve` wires them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from analyzer.config import load_settings
from analyzer.db import make_engine
from analyzer.wiring import servicenow_credentials
from gates.servicenow import ServiceNowTableClient
from gates.servicenow.errors import ServiceNowAuthError
from tests.fakes.servicenow import FakeServiceNow


def rotate(path: Path, value: str) -> None:
    fresh = path.with_suffix(".new")
    fresh.write_text(value + "\n", encoding="utf-8")
    os.replace(fresh, path)


def test_servicenow_password_rotated_in_its_file_is_sent_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = tmp_path / "servicenow-password"
    password.write_text("bot-password\n", encoding="utf-8")
    with FakeServiceNow() as fake:
        fake.add_table("change_request")
        monkeypatch.setenv("CANARY_ANALYZER_SERVICENOW__INSTANCE_URL", fake.url)
        monkeypatch.setenv("CANARY_ANALYZER_SERVICENOW__USERNAME", "gate.bot")
        monkeypatch.setenv("CANARY_ANALYZER_SERVICENOW__PASSWORD_FILE", str(password))
        credentials = servicenow_credentials(load_settings())
        assert credentials is not None
        with ServiceNowTableClient(fake.url, credentials, timeout_seconds=2.0) as client:
            assert query(client) == []
            fake.users["gate.bot"] = "rotated-password"  # the instance rotates first
            with pytest.raises(ServiceNowAuthError):
                query(client)
            rotate(password, "rotated-password")  # then Vault Agent re-renders the file
            assert query(client) == []
        assert [r.auth_scheme for r in fake.requests] == ["Basic"] * 3


def query(client: ServiceNowTableClient) -> list[object]:
    return list(client.query("change_request", "active=true", fields=["number"], limit=10))


def test_database_url_rotated_in_its_file_is_used_by_new_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"
    url_file = tmp_path / "database-url"
    url_file.write_text(f"sqlite:///{first}\n", encoding="utf-8")
    monkeypatch.setenv("CANARY_ANALYZER_DATABASE_URL_FILE", str(url_file))
    settings = load_settings()
    engine = make_engine(  # as analyzer/wiring.py builds it for a URL from a file
        settings.effective_database_url(), current_url=settings.effective_database_url
    )
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE which (name TEXT)"))
        conn.execute(text("INSERT INTO which VALUES ('first')"))
    rotate(url_file, f"sqlite:///{second}")
    with engine.begin() as conn:  # the pooled connection still holds the first database
        assert conn.execute(text("SELECT name FROM which")).scalar() == "first"
    engine.dispose()  # as the pool recycles connections
    with engine.begin() as conn:
        tables = conn.execute(text("SELECT name FROM sqlite_master")).scalars().all()
    assert tables == []  # a new connection opened the second database
    assert second.exists()
    engine.dispose()
