"""The Vault Agent and Secrets Store CSI overlays: every secret file the service is told to read
is one the injector renders or the driver mounts, and the real settings loader accepts it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzer import config
from analyzer.config_secrets import FileSecret, secret_file_env_names
from tests.unit.deploy.test_manifests import DEPLOY, _kustomize, _one, _pod_spec

OVERLAYS = DEPLOY / "kustomize" / "overlays"
VAULT = OVERLAYS / "vault-agent"
CSI = OVERLAYS / "secrets-store-csi"
VAULT_PREFIX = "vault.hashicorp.com/agent-inject-secret-"


def server_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _pod_spec(_one(objects, "Deployment"))["containers"]
    return container


def file_envs(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_FILE")}


@pytest.mark.parametrize("overlay", [VAULT, CSI], ids=["vault-agent", "secrets-store-csi"])
def test_secret_files_replace_the_secret_variables(overlay: Path) -> None:
    container = server_container(_kustomize(overlay))
    files = file_envs(container)
    known = secret_file_env_names(config.Settings, config.ENV_PREFIX)
    assert {"CANARY_ANALYZER_DATABASE_URL_FILE"} <= set(files) <= set(known)
    plain = {e["name"] for e in container["env"]}
    for name in files:
        assert name.removesuffix("_FILE") not in plain, f"{name} and its variable are both set"


def test_vault_agent_renders_every_file_the_service_reads() -> None:
    objects = _kustomize(VAULT)
    annotations = _one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/agent-inject"] == "true"
    rendered = {k[len(VAULT_PREFIX) :] for k in annotations if k.startswith(VAULT_PREFIX)}
    for path in file_envs(server_container(objects)).values():
        directory, name = path.rsplit("/", 1)
        assert directory == "/vault/secrets"
        assert name in rendered
        assert f"vault.hashicorp.com/agent-inject-template-{name}" in annotations


def test_csi_driver_mounts_every_file_the_service_reads() -> None:
    objects = _kustomize(CSI)
    spec = _pod_spec(_one(objects, "Deployment"))
    container = server_container(objects)
    (volume,) = [v for v in spec["volumes"] if "csi" in v]
    assert volume["csi"]["driver"] == "secrets-store.csi.k8s.io"
    provider_class = _one(
        objects, "SecretProviderClass", volume["csi"]["volumeAttributes"]["secretProviderClass"]
    )
    listed = {
        yaml.safe_load(item)["objectName"]
        for item in yaml.safe_load(provider_class["spec"]["parameters"]["objects"])["array"]
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    for path in file_envs(container).values():
        directory, name = path.rsplit("/", 1)
        assert directory == mount["mountPath"]
        assert name in listed


@pytest.mark.parametrize("overlay", [VAULT, CSI], ids=["vault-agent", "secrets-store-csi"])
def test_the_settings_loader_reads_the_mounted_files(
    overlay: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = server_container(_kustomize(overlay))
    for key in list(os.environ):
        if key.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(key)
    for name, path in file_envs(container).items():
        local = tmp_path / Path(path).name  # the mount, at a path of this machine
        value = "postgresql+psycopg://u:p@db/canary" if "DATABASE" in name else "s3cret"
        local.write_text(value + "\n", encoding="utf-8")
        monkeypatch.setenv(name, str(local))
    settings = config.load_settings()
    assert isinstance(settings.database_url, FileSecret)
    assert settings.effective_database_url() == "postgresql+psycopg://u:p@db/canary"
    assert isinstance(settings.servicenow.client_secret, FileSecret)
