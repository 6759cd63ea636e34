"""One real MLflow tracking server per test session (see tests/mlflow_server.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.mlflow_server import MlflowAdmin, MlflowUnavailableError, mlflow_server


@pytest.fixture(scope="session")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("mlflow")
    try:
        server = mlflow_server(workdir)
        url = server.__enter__()
    except MlflowUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must provide MLflow; see tests/run.sh)")
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def mlflow_admin(mlflow_url: str) -> Iterator[MlflowAdmin]:
    admin = MlflowAdmin(mlflow_url)
    yield admin
    admin.close()


@pytest.fixture
def model_name() -> str:
    """A registered-model name of this test alone (the server is shared by the session)."""
    return f"fraud-scorer-{uuid.uuid4().hex[:8]}"
