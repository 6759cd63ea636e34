"""A real MLflow tracking server for the registry tests.

MLflow is heavy (~850 MB with its dependencies) and is no runtime dependency of canary-analyzer,
so it lives in its own virtualenv, ``.venv-mlflow``, which ``tests/run.sh`` creates (or
``CANARY_TEST_MLFLOW`` names another ``mlflow`` executable). The server runs with a SQLite
backend store in a temporary directory on 127.0.0.1 and a free port, once per test session.

In CI (``CI`` set) a missing MLflow fails the tests; locally they are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = ROOT / ".venv-mlflow" / "bin" / "mlflow"
STARTUP_SECONDS = 120.0  # the first start migrates the SQLite store: ~20 s on a busy machine


class MlflowUnavailableError(RuntimeError):
    pass


def mlflow_executable() -> Path:
    path = Path(os.environ.get("CANARY_TEST_MLFLOW", str(DEFAULT_BIN)))
    if not path.is_file():
        raise MlflowUnavailableError(
            f"no MLflow at {path}: run `bash tests/run.sh` (it creates .venv-mlflow) or set "
            "CANARY_TEST_MLFLOW"
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """Start ``mlflow server`` and yield its base URL; stop it afterwards."""
    executable = mlflow_executable()
    port = free_port()
    log_path = workdir / "mlflow.log"
    command = [
        str(executable), "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise MlflowUnavailableError(f"mlflow server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise MlflowUnavailableError(f"mlflow server did not answer /health in {STARTUP_SECONDS} s")


class MlflowAdmin:
    """What a data scientist's pipeline does to the registry (register, tag, alias), over the
    same REST API, so the tests set the registry up the way production would find it."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=f"{url}/api/2.0/mlflow", timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    def create_model(self, name: str) -> None:
        self._post("registered-models/create", {"name": name})

    def create_version(self, name: str, source: str, *, run_id: str = "", **tags: str) -> str:
        body: dict[str, object] = {"name": name, "source": source, "run_id": run_id}
        body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        mv = self._post("model-versions/create", body)["model_version"]
        assert isinstance(mv, dict)
        return str(mv["version"])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._post("registered-models/alias", {"name": name, "alias": alias, "version": version})

    def aliases(self, name: str) -> dict[str, str]:
        response = self._http.get("registered-models/get", params={"name": name})
        response.raise_for_status()
        model = response.json()["registered_model"]
        return {a["alias"]: a["version"] for a in model.get("aliases", [])}

    def delete_version(self, name: str, version: str) -> None:
        response = self._http.request(
            "DELETE", "model-versions/delete", json={"name": name, "version": version}
        )
        response.raise_for_status()
