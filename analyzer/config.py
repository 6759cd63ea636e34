"""The one typed settings tree.

Settings come from environment variables with the prefix ``CANARY_ANALYZER_`` (nested sections
with ``__``, e.g. ``CANARY_ANALYZER_PROMETHEUS__URL``) and, optionally, a YAML file named by
``CANARY_ANALYZER_CONFIG_FILE``. Unknown keys are rejected in both places with an error naming the
key, so a typo never silently falls back to a default. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from analyzer.config_secrets import EnvWithoutSecretFiles, SecretFilesSource, secret_file_env_names
from analyzer.domain.errors import ConfigurationError, InvalidInputError
from analyzer.domain.model import ModelRef, Tier
from analyzer.rollouts.repository import plan_from_json
from gates.change_window import FreezeCalendar, ModelCalendar
from gates.evaluation import EvaluationGateConfig
from gates.policy import GatePolicyConfig
from gates.servicenow.gate import ServiceNowGateConfig
from gates.shadow import ShadowGateConfig
from gates.signature import SIGNATURE, SignatureGateConfig

ENV_PREFIX = "CANARY_ANALYZER_"
# Read by the process but not settings of the service itself.
_ENV_NOT_SETTINGS = frozenset(
    {
        "CANARY_ANALYZER_CONFIG_FILE",
        "CANARY_ANALYZER_TEST_DATABASE_URL",
        "CANARY_ANALYZER_VENV",
        # the `rollout` commands' client settings (an API URL and a token, not server settings)
        "CANARY_ANALYZER_URL",
        "CANARY_ANALYZER_TOKEN",
    }
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusSettings(_Section):
    url: str = "http://127.0.0.1:9090"
    timeout_seconds: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    # Fresh looks (queries + judge) run in this many worker processes, off the API process's
    # GIL (docs/benchmarks.md: API load); 0 runs them on the API process's threads.
    look_processes: int = Field(default=2, ge=0, le=32)
    # The longest a look may run in a worker before it is dropped as `error` (driven rollouts);
    # API calls are bounded tighter by api.analysis_deadline_seconds.
    look_timeout_seconds: float = Field(default=8.0, gt=0)


class SyntheticSettings(_Section):
    """The embedded synthetic metric source (``metric_source: synthetic``).

    Both arms behave alike and their traffic follows the memory target's split (a 10 % step
    sends the canary 10 % of the requests), so the sample-ratio check sees what it expects.
    ``srm_canary_share`` gives the canary that share of the requests whatever the split: a
    deliberate sample-ratio mismatch, for tests of that check.
    """

    srm_canary_share: float | None = Field(default=None, gt=0, lt=1)


class DatadogSettings(_Section):
    """The Datadog metric source (``metric_source: datadog``; docs/metrics.md, Datadog).

    Keys: ``api_key``/``application_key`` (``CANARY_ANALYZER_DATADOG__API_KEY``, ...), or files
    holding them (a mounted Kubernetes secret), or Datadog's own ``DD_API_KEY`` and
    ``DD_APP_KEY`` environment variables, in that order; one place per key.
    """

    site: Literal[
        "datadoghq.com",
        "us3.datadoghq.com",
        "us5.datadoghq.com",
        "datadoghq.eu",
        "ap1.datadoghq.com",
        "ap2.datadoghq.com",
        "uk1.datadoghq.com",
        "ddog-gov.com",
        "us2.ddog-gov.com",
    ] = "datadoghq.com"
    api_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")  # overrides site
    api_key: SecretStr | None = None
    application_key: SecretStr | None = None
    api_key_file: Path | None = None
    application_key_file: Path | None = None
    timeout_seconds: float = Field(default=2.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    # A 429 whose X-RateLimit-Reset is further away than this is not waited out (error now,
    # the next look asks again): a look must answer inside Argo's timeout.
    max_rate_limit_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    rollup_seconds: int = Field(default=60, ge=1, le=86400)
    staleness_seconds: float = Field(default=300.0, gt=0)

    def keys(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The API and application keys, or ``ConfigurationError`` saying what is missing."""
        env = os.environ if environ is None else environ
        api = _secret(self.api_key, self.api_key_file, "datadog.api_key", env, ("DD_API_KEY",))
        app = _secret(
            self.application_key,
            self.application_key_file,
            "datadog.application_key",
            env,
            ("DD_APP_KEY", "DD_APPLICATION_KEY"),
        )
        return api, app


def _secret(
    value: SecretStr | None,
    path: Path | None,
    name: str,
    environ: Mapping[str, str],
    env_names: tuple[str, ...],
) -> str:
    if value is not None and path is not None:
        raise ConfigurationError(f"{name} and {name}_file are both set: keep one")
    if value is not None:
        secret = value.get_secret_value().strip()
    elif path is not None:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"{name}_file {path}: {exc.strerror}") from exc
    else:
        secret = next((environ[e].strip() for e in env_names if environ.get(e)), "")
    if not secret:
        raise ConfigurationError(
            f"metric_source datadog needs {name} (or {name}_file, or {' / '.join(env_names)})"
        )
    return secret


class LedgerSettings(_Section):
    """Ledger verification in the serving process, and signed head checkpoints (docs/ledger.md).

    Checkpoints are on when a signing key is configured (``checkpoint_key_file``, a mounted
    secret, or ``checkpoint_key``, the PEM itself): every ``checkpoint_interval_seconds`` the
    head just verified is signed and written to the structured log (``ledger.checkpoint``) and,
    with ``checkpoint_dir``, as a file there. The watch also checks the newest checkpoint in
    ``checkpoint_dir`` against the chain, trusting this key and ``checkpoint_public_key_files``
    (keys signed with before a rotation).
    """

    # The serving process re-verifies new ledger entries this often (analyzer/ledger/watch.py),
    # starting from this many entries before the head when it starts.
    verify_interval_seconds: float = Field(default=60.0, gt=0)
    verify_history_entries: int = Field(default=10_000, ge=0)
    # Where each replica writes its signed head checkpoints (a WORM bucket mount, a volume the
    # database owners cannot rewrite); needs a signing key.
    checkpoint_dir: Path | None = None
    # The Ed25519 private key (PEM, PKCS#8) that signs checkpoints, as a mounted secret file;
    # make one with `canary-analyzer ledger checkpoint-key`. Setting it turns checkpoints on.
    checkpoint_key_file: Path | None = None
    # The same key's PEM itself, instead of a file (keep one of the two).
    checkpoint_key: SecretStr | None = None
    # Public keys (PEM files or directories of them) whose checkpoints the watch also believes:
    # the keys signed with before a rotation (docs/operations.md).
    checkpoint_public_key_files: tuple[Path, ...] = ()
    # How often each replica signs the head it has verified (only when the head moved).
    checkpoint_interval_seconds: float = Field(default=300.0, gt=0)
    # Also add the signed head, right after each promotion of a rollout naming a change request,
    # to that CR's work notes in ServiceNow (needs write access to work_notes; docs/ledger.md).
    checkpoint_change_request_notes: bool = False

    @model_validator(mode="after")
    def _one_key(self) -> LedgerSettings:
        if self.checkpoint_key_file is not None and self.checkpoint_key is not None:
            raise ValueError("ledger.checkpoint_key and checkpoint_key_file are both set: keep one")
        if self.checkpoint_change_request_notes and not self.checkpoints_enabled():
            raise ValueError(
                "ledger.checkpoint_change_request_notes needs a signing key: set "
                "ledger.checkpoint_key_file"
            )
        if self.checkpoint_dir is not None and not self.checkpoints_enabled():
            raise ValueError(
                "ledger.checkpoint_dir is set but no signing key: set ledger.checkpoint_key_file "
                "(make one with `canary-analyzer ledger checkpoint-key`)"
            )
        return self

    def checkpoints_enabled(self) -> bool:
        return self.checkpoint_key_file is not None or self.checkpoint_key is not None

    def checkpoint_key_pem(self) -> tuple[bytes, str]:
        """The signing key's PEM and where it came from, or ``ConfigurationError``."""
        if self.checkpoint_key is not None:
            return self.checkpoint_key.get_secret_value().encode(), "ledger.checkpoint_key"
        if self.checkpoint_key_file is None:
            raise ConfigurationError("ledger.checkpoint_key_file is not set")
        try:
            return self.checkpoint_key_file.read_bytes(), str(self.checkpoint_key_file)
        except OSError as exc:
            raise ConfigurationError(
                f"ledger.checkpoint_key_file {self.checkpoint_key_file}: {exc.strerror}"
            ) from exc


class ServiceNowSettings(_Section):
    instance_url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)


class ServiceNowGateSettings(_Section):
    """The ServiceNow gate's checks (credentials live in ``servicenow``)."""

    check: ServiceNowGateConfig = ServiceNowGateConfig()


class ApprovalSettings(_Section):
    required_approvers: int = Field(default=1, ge=1, le=10)
    ttl_hours: float = Field(default=24.0, gt=0)


class GatesSettings(_Section):
    """Which gates each tier or model needs (``policy``) and how each gate is configured.

    Without a ``change_window`` calendar (or ``model_change_windows``) the change-window gate is
    not configured, and a policy that requires it keeps the step closed (fail closed), saying
    so. The same holds for
    ``evaluation`` (CI's evaluation suites per model version; docs/gates.md).
    """

    policy: GatePolicyConfig = GatePolicyConfig()
    change_window: FreezeCalendar | None = None
    # Freezes for some models only ("namespace/name" or "namespace/*"), on top of change_window.
    model_change_windows: tuple[ModelCalendar, ...] = ()
    servicenow: ServiceNowGateSettings = ServiceNowGateSettings()
    approval: ApprovalSettings = ApprovalSettings()
    evaluation: EvaluationGateConfig | None = None
    # The shadow gate ("shadow passed within N days for this model version"; docs/gates.md).
    # Unset: the gate is still built with its defaults, so a policy that requires it works.
    shadow: ShadowGateConfig = ShadowGateConfig()
    # cosign public keys; configured, the signature gate is required at every step of every
    # model (closed for enforce_tiers, a warning for the others; docs/registry.md).
    signature: SignatureGateConfig | None = None

    @model_validator(mode="after")
    def _signature_everywhere(self) -> GatesSettings:
        if self.signature is not None:
            object.__setattr__(self, "policy", self.policy.requiring(SIGNATURE, from_weight=0))
        return self


class ChallengerWatchSettings(_Section):
    """A registered model whose ``challenger`` versions start rollouts of a served model
    (analyzer/rollouts/challengers.py; the service's default plan)."""

    registered_model: str = Field(min_length=1, max_length=255)
    model: str = Field(min_length=3, max_length=320, description="NAMESPACE/NAME it serves as")
    profile: str = Field(min_length=1, max_length=128)
    tier: Tier = Tier.STANDARD
    change_request: str | None = Field(default=None, max_length=64)
    # The API's plan shape (steps with weight and dwell_seconds, analysis_interval_seconds,
    # max_bake_seconds, consecutive_error_limit); unset: the service's default plan.
    plan: dict[str, Any] | None = None

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                plan_from_json(value)
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        try:
            ModelRef.parse(value)
        except InvalidInputError as exc:  # refused at start-up, with the reason
            raise ValueError(str(exc)) from exc
        return value


class RegistrySettings(_Section):
    """The model registry (docs/registry.md). Without ``url`` no registry is used: a rollout
    naming ``models:/…`` is refused, and no alias moves."""

    kind: Literal["mlflow"] = "mlflow"
    url: str | None = Field(
        default=None, description="MLflow tracking server, e.g. http://mlflow:5000"
    )
    token: SecretStr | None = None  # sent as a bearer token (MLflow behind an auth proxy)
    timeout_seconds: float = Field(default=5.0, gt=0)
    # Model-version tags holding the artifact's digest (sha256:<hex>) and its cosign signature.
    digest_tag: str = Field(default="artifact_digest", min_length=1, max_length=250)
    signature_tag: str = Field(default="cosign_signature", min_length=1, max_length=250)
    # True: every rollout must name models:/NAME/VERSION or models:/NAME@ALIAS.
    required: bool = False
    challenger_alias: str = Field(default="challenger", pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
    champion_alias: str = Field(default="champion", pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
    # Registered models whose challenger versions start rollouts (empty: no poller), and how
    # often each is polled (by one replica at a time, under a lease).
    watch: tuple[ChallengerWatchSettings, ...] = ()
    poll_seconds: float = Field(default=30.0, ge=5, le=3600)

    @model_validator(mode="after")
    def _required_needs_url(self) -> RegistrySettings:
        if self.required and self.url is None:
            raise ValueError("registry.required is true but registry.url is not set")
        if self.watch and self.url is None:
            raise ValueError("registry.watch is set but registry.url is not set")
        if self.challenger_alias == self.champion_alias:
            raise ValueError("registry.challenger_alias and champion_alias must differ")
        return self


class KubernetesSettings(_Section):
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False


class IstioSettings(_Section):
    """The request mirror of shadow runs on Istio VirtualServices (docs/strategies.md).

    ``virtual_service``: the VirtualService of a model, ``{model}`` and ``{namespace}`` replaced
    (KServe names an InferenceService's route after it). ``route_name``: the HTTP route to mirror
    (unset: the first). ``mirror_host``: the challenger's host, ``{revision}`` and ``{namespace}``
    replaced (Knative creates a Service per revision).
    """

    virtual_service: str = Field(default="{model}", min_length=1, max_length=253)
    route_name: str | None = Field(default=None, max_length=253)
    mirror_host: str = Field(
        default="{revision}.{namespace}.svc.cluster.local", min_length=1, max_length=253
    )


class ObserverSettings(_Section):
    """The traffic observer (docs/ledger.md): watches objects and records what they serve.

    ``enabled`` unset: on whenever the traffic target is a cluster (``kserve`` or ``argo``).
    ``namespaces`` empty: every namespace (needs a ClusterRole; with namespaces, a Role in
    each). ``kinds``: which objects to watch.
    """

    enabled: bool | None = None
    namespaces: tuple[str, ...] = ()
    kinds: tuple[Literal["inferenceservices", "rollouts"], ...] = Field(
        default=("inferenceservices", "rollouts"), min_length=1
    )
    # Each watch request asks the apiserver to end it after this long; it resumes at once.
    watch_timeout_seconds: int = Field(default=300, ge=10, le=3600)


class StaticTokenSettings(_Section):
    """A bearer token for local use. Give ``token_sha256`` (hex) rather than the token itself."""

    subject: str = Field(min_length=1, max_length=256)
    roles: tuple[str, ...] = Field(min_length=1)
    token: SecretStr | None = None
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    namespaces: tuple[str, ...] | None = None  # None: every namespace


class RateLimitSettings(_Section):
    per_second: float = Field(default=20.0, gt=0)
    burst: int = Field(default=60, ge=1)


class UiSettings(_Section):
    """The web pages under ``/ui/`` (docs/ui.md).

    In production an SSO proxy (oauth2-proxy with ``--pass-authorization-header``) sends every
    request with ``Authorization: Bearer``; switch ``login_form`` off there so no token is ever
    kept in a browser cookie. For local use the login form takes a token and keeps it in an
    HttpOnly, SameSite=Strict cookie scoped to ``/ui``; ``cookie_secure`` may be turned off only
    for plain-HTTP use on a workstation.
    """

    login_form: bool = True
    cookie_secure: bool = True
    session_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 86400)


# The roles of analyzer.api.auth.Role (tests/unit/api/test_oidc_claims.py keeps them equal).
RoleName = Literal["viewer", "auditor", "operator", "approver", "admin", "analysis"]


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # The token issuer, exactly as its tokens' `iss` (Entra ID v2:
    # https://login.microsoftonline.com/TENANT/v2.0; Okta: https://ORG.okta.com/oauth2/default).
    oidc_issuer: str | None = None
    # The `aud` every token must carry (Entra ID v2: the API's client ID; Okta: api://default).
    oidc_audience: str | None = None
    # Unset: found through the issuer's /.well-known/openid-configuration (jwks_uri).
    oidc_jwks_url: str | None = None
    # Whose token shape to expect: entra_id (roles, groups, tid checked against oidc_tenant_id)
    # or okta (groups); generic reads oidc_roles_claim only (docs/identity.md).
    oidc_provider: Literal["generic", "entra_id", "okta"] = "generic"
    # Entra ID: the directory (tenant) ID every token's `tid` must equal; required there.
    oidc_tenant_id: str | None = None
    # The claim listing the user's groups; unset: "groups" for entra_id and okta, none otherwise.
    oidc_groups_claim: str | None = None
    # A value of the roles or groups claim (an Entra app role value, an Entra group's object ID,
    # an Okta group name) -> the roles it grants. Unmapped values grant nothing (403).
    oidc_role_map: dict[str, tuple[RoleName, ...]] = Field(default_factory=dict)
    # A value of the roles or groups claim -> the namespaces it reaches ("*": every one). Set,
    # tokens are scoped: one that matches nothing here or in oidc_namespaces_claim reaches none.
    oidc_namespace_map: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    oidc_algorithms: tuple[Literal["RS256", "ES256"], ...] = ("RS256", "ES256")
    oidc_roles_claim: str = "roles"  # dotted path, e.g. realm_access.roles
    oidc_namespaces_claim: str | None = None  # set to scope tokens to namespaces
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: int = Field(default=300, ge=0)
    static_tokens: tuple[StaticTokenSettings, ...] = ()
    rate_limit_analysis: RateLimitSettings = RateLimitSettings(per_second=50.0, burst=200)
    rate_limit_audit: RateLimitSettings = RateLimitSettings(per_second=5.0, burst=30)
    profiles_dir: Path | None = None  # <name>.yaml files; shipped presets are always known
    analysis_cache_seconds: float = Field(default=10.0, ge=0)
    analysis_lookback_seconds: int = Field(default=600, ge=1)
    # Every POST /api/v1/analyses answers within this (unless the request asks for less): a late
    # fresh look answers the session's last decision. Keep it below the AnalysisTemplate's
    # timeoutSeconds (10 in deploy/argo), with margin for the network.
    analysis_deadline_seconds: float = Field(default=6.0, gt=0, le=60)
    # Sessions with no look for this long are deleted (hourly); their looks stay in the ledger.
    analysis_session_retention_days: int = Field(default=30, ge=1)
    ui: UiSettings = UiSettings()

    @model_validator(mode="after")
    def _entra_id_needs_a_tenant(self) -> ApiSettings:
        if self.oidc_provider == "entra_id" and self.oidc_issuer and not self.oidc_tenant_id:
            raise ValueError(
                "api.oidc_provider entra_id needs api.oidc_tenant_id (the directory ID every "
                "token's tid must equal)"
            )
        return self


class Settings(BaseSettings):
    """Everything the service can be configured with. Defaults run the embedded demo."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; PostgreSQL in production "
        "(postgresql+psycopg://user@host/db). Unset: a SQLite file under data_dir.",
    )
    data_dir: Path = Field(default=Path.home() / ".local" / "share" / "canary-analyzer")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    metric_source: Literal["synthetic", "prometheus", "datadog"] = "synthetic"
    traffic_target: Literal["memory", "kserve", "argo"] = "memory"
    # Where shadow runs mirror requests: "auto" is the in-memory target itself when the traffic
    # target is "memory" (demo, tests) and none otherwise; "istio" edits VirtualServices;
    # "none" refuses shadow runs (422).
    mirror_target: Literal["auto", "none", "istio"] = "auto"
    istio: IstioSettings = IstioSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    datadog: DatadogSettings = DatadogSettings()
    servicenow: ServiceNowSettings = ServiceNowSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    gates: GatesSettings = GatesSettings()
    api: ApiSettings = ApiSettings()
    ledger: LedgerSettings = LedgerSettings()
    observer: ObserverSettings = ObserverSettings()
    synthetic: SyntheticSettings = SyntheticSettings()
    registry: RegistrySettings = RegistrySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit overrides (CLI flags) > environment (a secret's `…_FILE` next to
        # its own variable: analyzer/config_secrets.py) > config file > defaults.
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            EnvWithoutSecretFiles(settings_cls, ENV_PREFIX),
            SecretFilesSource(settings_cls, ENV_PREFIX, os.environ),
        ]
        if config_file := os.environ.get("CANARY_ANALYZER_CONFIG_FILE"):
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(config_file)))
        return tuple(sources)

    def observer_enabled(self) -> bool:
        """The observer runs when asked to, else whenever the target is a cluster."""
        if self.observer.enabled is not None:
            return self.observer.enabled
        return self.traffic_target in ("kserve", "argo")

    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'canary-analyzer.sqlite3'}"


def _unknown_env_keys(environ: Mapping[str, str]) -> list[str]:
    known = {name.upper() for name in Settings.model_fields}
    secret_files = secret_file_env_names(Settings, ENV_PREFIX)
    unknown = []
    for key in environ:
        if not key.startswith(ENV_PREFIX) or key in _ENV_NOT_SETTINGS or key in secret_files:
            continue
        top = key[len(ENV_PREFIX) :].split("__", 1)[0]
        if top not in known:
            unknown.append(key)
    return sorted(unknown)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{key}: {err['msg']}")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from overrides, the environment and the config file, or raise.

    Raises ConfigurationError naming every bad or unknown key.
    """
    unknown = _unknown_env_keys(os.environ)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(unknown)}; known: "
            + ", ".join(ENV_PREFIX + n.upper() for n in Settings.model_fields)
        )
    config_file = os.environ.get("CANARY_ANALYZER_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise ConfigurationError(f"CANARY_ANALYZER_CONFIG_FILE={config_file} does not exist")
    try:
        return Settings(**overrides)
    except (ValidationError, yaml.YAMLError) as exc:
        detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigurationError(f"invalid configuration: {detail}") from exc
