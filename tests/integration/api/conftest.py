"""The API over real HTTP: uvicorn on 127.0.0.1, a scratch PostgreSQL, injected clock and keys.

Every role has a static token; OIDC tokens are signed with RSA/EC keys generated here and served
through an injected JWKS fetcher (the test can rotate keys and count fetches).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.looks import ThreadLooks
from analyzer.analyses.service import AnalysisService
from analyzer.api.app import create_app
from analyzer.api.auth import Authenticator
from analyzer.api.flagger import PolicyGateEvaluator
from analyzer.config import ApiSettings, RateLimitSettings, Settings, StaticTokenSettings
from analyzer.domain.model import ModelRef
from analyzer.domain.result import AnalysisResult, MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict
from analyzer.fleets.engine import FleetEngine
from analyzer.judge import JudgeState
from analyzer.ledger.store import Ledger
from analyzer.metrics.base import MetricSource
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.metrics.synthetic.fleet import SyntheticFleetSource
from analyzer.registry.base import ModelRegistry
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory import InMemoryFleetTarget
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import FleetWaveGates, LedgerApprovals, approval_steps_of
from gates.manual_approval import ManualApprovalGate
from gates.policy import MANUAL_APPROVAL, GatePolicyConfig

ROLES = ("viewer", "auditor", "operator", "approver", "admin", "analysis")
ISSUER = "https://idp.test.example"
AUDIENCE = "canary-analyzer"
T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def static_token(role: str) -> str:
    return f"static-token-for-{role}-0123456789"


TENANT_TOKEN = "static-token-risk-prod-admin-0123456789"


class FakeClock:
    """Wall clock and monotonic seconds the test advances by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.seconds = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_GENERATED: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {}


@dataclass
class Keys:
    """Signing keys of the fake identity provider and the JWKS it publishes."""

    rsa: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    ec: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetches: int = 0

    def add_rsa(self, kid: str, *, publish: bool = True) -> None:
        if kid not in _GENERATED:  # RSA generation is slow; keys are reused across tests
            _GENERATED[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key = _GENERATED[kid]
        assert isinstance(key, rsa.RSAPrivateKey)
        self.rsa[kid] = key
        if publish:
            self.published.append(kid)

    def add_ec(self, kid: str) -> None:
        if kid not in _GENERATED:
            _GENERATED[kid] = ec.generate_private_key(ec.SECP256R1())
        key = _GENERATED[kid]
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.ec[kid] = key
        self.published.append(kid)

    def jwks(self) -> Mapping[str, Any]:
        self.fetches += 1
        keys = []
        for kid in self.published:
            if kid in self.rsa:
                pub = self.rsa[kid].public_key().public_numbers()
                keys.append(
                    {"kty": "RSA", "kid": kid, "alg": "RS256", "n": _b64(pub.n), "e": _b64(pub.e)}
                )
            else:
                point = self.ec[kid].public_key().public_numbers()
                keys.append(
                    {
                        "kty": "EC",
                        "kid": kid,
                        "crv": "P-256",
                        "alg": "ES256",
                        "x": base64.urlsafe_b64encode(point.x.to_bytes(32, "big"))
                        .decode()
                        .rstrip("="),
                        "y": base64.urlsafe_b64encode(point.y.to_bytes(32, "big"))
                        .decode()
                        .rstrip("="),
                    }
                )
        return {"keys": keys}

    def token(self, kid: str = "k1", *, algorithm: str | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice@example.com",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "roles": ["admin"],
            "namespaces": ["*"],
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        if kid in self.ec:
            return jwt.encode(
                claims, self.ec[kid], algorithm=algorithm or "ES256", headers={"kid": kid}
            )
        return jwt.encode(
            claims, self.rsa[kid], algorithm=algorithm or "RS256", headers={"kid": kid}
        )


def api_settings(**overrides: Any) -> Settings:
    tokens = [
        StaticTokenSettings(subject=f"{role}-user", roles=(role,), token=static_token(role))
        for role in ROLES
    ]
    tokens.append(
        StaticTokenSettings(
            subject="risk-prod-admin",
            roles=("admin",),
            token=TENANT_TOKEN,
            namespaces=("risk-prod",),
        )
    )
    api = {
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks_url": "https://idp.test.example/jwks",
        "oidc_namespaces_claim": "namespaces",
        "static_tokens": tuple(tokens),
        "rate_limit_analysis": RateLimitSettings(per_second=1000, burst=1000),
        "rate_limit_audit": RateLimitSettings(per_second=1000, burst=1000),
        "max_body_bytes": 64 * 1024,
        **overrides,
    }
    return Settings(api=ApiSettings(**api))


class Running:
    """A uvicorn server on 127.0.0.1 in a thread."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class FixedAnalyzer:
    """Stands in for run_analysis: answers a chosen verdict and counts calls."""

    def __init__(self) -> None:
        self.verdict = Verdict.PASS
        self.delay = 0.0  # seconds a look takes, to make concurrent calls overlap
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(
        self, profile: Any, *args: Any, **kwargs: Any
    ) -> tuple[AnalysisResult, JudgeState]:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.verdict is Verdict.ERROR:
            metrics: tuple[MetricResult, ...] = (
                MetricResult(
                    name="errors",
                    kind=MetricKind.PROPORTION,
                    verdict=Verdict.ERROR,
                    classification=Classification.NODATA,
                    reason="errors: source failed: connection refused",
                ),
            )
        else:
            metrics = ()
        result = AnalysisResult(
            verdict=self.verdict,
            score=100.0 if self.verdict is Verdict.PASS else 0.0,
            reason=f"fixed {self.verdict.value}",
            metrics=metrics,
            alpha=0.05,
        )
        return result, args[-1] or JudgeState()


@dataclass
class Harness:
    """Everything a test needs: the running API, its services, tokens and clock."""

    url: str
    app: FastAPI
    engine: Engine
    ledger: Ledger
    target: InMemoryTarget
    rollouts: RolloutService
    analyses: AnalysisService
    looks: ThreadLooks
    analyzer: FixedAnalyzer | None
    clock: FakeClock
    keys: Keys
    http: httpx.Client
    fleets: FleetEngine | None = None
    fleet_target: InMemoryFleetTarget | None = None

    def as_role(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {static_token(role)}"}

    def call(
        self, method: str, path: str, role: str | None = "admin", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers.setdefault("Authorization", f"Bearer {static_token(role)}")
        return self.http.request(method, self.url + path, headers=headers, **kwargs)


SYNTHETIC = {
    "base-00001": RevisionBehaviour(weight=0.5),
    "good-00002": RevisionBehaviour(weight=0.5),
    "bad-00003": RevisionBehaviour(weight=0.5, error_rate=0.2, latency_shift=1.0),
}


FLEET_NAMESPACE = "merchants"
MM_COUNTER = "modelmesh_api_request_milliseconds_count"
FLEET_MODELS = [f"merchant-{i:03d}" for i in range(30)]


def _fleets(
    engine: Engine, ledger: Ledger, clock: FakeClock
) -> tuple[InMemoryFleetTarget, FleetEngine]:
    """30 in-memory ModelMesh-like models in ``merchants``, with synthetic counts."""
    target = InMemoryFleetTarget(clock=lambda: clock().timestamp())
    for m in FLEET_MODELS:
        target.add_model(
            ModelRef(namespace=FLEET_NAMESPACE, name=m),
            storage_uri=f"s3://models/{m}/v1",
            labels={"team": "anomaly"},
        )
    source = SyntheticFleetSource(
        seed=17,
        models=FLEET_MODELS,
        serving=lambda m: target.history(ModelRef(namespace=FLEET_NAMESPACE, name=m)),
        rate_of=lambda _m, _uri, base: base,
        requests_per_tick=50.0,
    )
    # the manual-approval gate as the service wires it: it reads the fleet's approvals from the
    # ledger, where POST /api/v1/fleets/{id}/approvals records them
    gates = FleetWaveGates({MANUAL_APPROVAL: ManualApprovalGate(LedgerApprovals(ledger))})
    return target, FleetEngine(
        db=engine, ledger=ledger, source=source, target=target, clock=clock, gates=gates
    )


def fleet_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "anomaly-v2",
        "namespace": FLEET_NAMESPACE,
        "selector": {"team": "anomaly"},
        "version": {"name": "v2", "storage_uri": "s3://models/{model}/v2"},
        "from_version": "v1",
        "waves": [
            {"percent": 10, "dwell_seconds": 1800, "deadline_seconds": 5400},
            {"percent": 100, "dwell_seconds": 1800, "deadline_seconds": 5400},
        ],
        "metrics": [
            {
                "name": "errors",
                "events": MM_COUNTER + '{namespace="{namespace}",code!="OK"}',
                "total": MM_COUNTER + '{namespace="{namespace}"}',
                "model_label": "vModelId",
                "tolerance": 0.01,
                "safety_max": 0.25,
            }
        ],
        "look_interval_seconds": 600,
    }
    body.update(overrides)
    return body


def build_harness(
    engine: Engine,
    *,
    fixed: bool = True,
    settings: Settings | None = None,
    cache_seconds: float = 10.0,
    gate_evaluator: PolicyGateEvaluator | None = None,
    source: MetricSource | None = None,
    now: datetime = T0,
    deadline_seconds: float = 6.0,
    lookback: timedelta = timedelta(minutes=30),
    registry: ModelRegistry | None = None,
    oidc_discovery: bool = False,
) -> Harness:
    clock = FakeClock(now)
    keys = Keys()
    keys.add_rsa("k1")
    keys.add_ec("e1")
    settings = settings or api_settings()
    ledger = Ledger(engine, clock=clock)
    target = InMemoryTarget()
    gate_evaluator = gate_evaluator or PolicyGateEvaluator(GatePolicyConfig(), {})
    rollouts = RolloutService(
        engine, ledger, target, clock=clock, registry=registry,
        approval_steps=approval_steps_of(gate_evaluator.config),
    )  # fmt: skip
    source = source or SyntheticSource(
        seed=7, origin=T0 - timedelta(hours=2), revisions=SYNTHETIC, request_rate=200.0
    )
    analyzer = FixedAnalyzer() if fixed else None
    looks = ThreadLooks(source, analyzer=analyzer) if analyzer else ThreadLooks(source)
    analyses = AnalysisService(
        engine,
        ledger,
        looks,
        clock=clock,
        cache_seconds=cache_seconds,
        lookback=lookback,
        deadline_seconds=deadline_seconds,
    )
    fleet_target, fleets = _fleets(engine, ledger, clock)
    app = create_app(
        settings,
        engine=engine,
        ledger=ledger,
        rollouts=rollouts,
        analyses=analyses,
        gate_evaluator=gate_evaluator,
        profiles=ProfileCatalog(None),
        authenticator=Authenticator.from_settings(
            # oidc_discovery: the keys come from the configured issuer over HTTP, as in service
            settings.api,
            jwks_fetcher=None if oidc_discovery else keys.jwks,
            clock=clock.monotonic,
        ),
        registry=CollectorRegistry(),
        clock=clock,
        monotonic=clock.monotonic,
        fleet_engine=fleets,
    )
    running = Running(app)
    harness = Harness(
        url=running.url,
        app=app,
        engine=engine,
        ledger=ledger,
        target=target,
        rollouts=rollouts,
        analyses=analyses,
        looks=looks,
        analyzer=analyzer,
        clock=clock,
        keys=keys,
        http=httpx.Client(timeout=10),
        fleets=fleets,
        fleet_target=fleet_target,
    )
    harness._running = running  # type: ignore[attr-defined]
    return harness


@pytest.fixture
def make_api(pg_engine: Engine) -> Iterator[Callable[..., Harness]]:
    built: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        harness = build_harness(pg_engine, **kwargs)
        built.append(harness)
        return harness

    yield make
    for harness in built:
        harness.analyses.close()
        harness.looks.close()
        harness.http.close()
        harness._running.stop()  # type: ignore[attr-defined]


@pytest.fixture
def api(make_api: Callable[..., Harness]) -> Harness:
    return make_api()


def analysis_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"namespace": "risk-prod", "name": "fraud"},
        "canary": "good-00002",
        "baseline": "base-00001",
        "profile": "knative",
        "weight": 50,
        "rollout": "fraud-rollout",
    }
    body.update(overrides)
    return body


def start_body(
    namespace: str = "risk-prod", name: str = "fraud", **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"namespace": namespace, "name": name},
        "tier": "standard",
        "baseline_revision": "base-00001",
        "canary_revision": "good-00002",
        "profile": "knative",
    }
    body.update(overrides)
    return body


def model_ref(namespace: str = "risk-prod", name: str = "fraud") -> ModelRef:
    return ModelRef(namespace=namespace, name=name)
