"""Static checks of ``deploy/``: no cluster, no Docker, a few seconds.

What a cluster would tell us late, these tests tell us at review time: every manifest parses and
names itself; the Kustomize trees reference files that exist (and render, when ``kubectl`` is
installed); RBAC grants exactly the Kubernetes calls the traffic targets make; every metric and
label the alerts and the dashboard use is one the service exports; every environment variable is
a real setting (loaded through the real settings loader); the pods run non-root on a read-only
root filesystem with probes on /readyz and /healthz.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel

from analyzer import config
from analyzer.api.metrics import ApiMetrics
from analyzer.observer.service import ObserverMetrics
from analyzer.targets.kube_watch import KINDS

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kustomize" / "base"
PRODUCTION = DEPLOY / "kustomize" / "overlays" / "production"
MONITORING = DEPLOY / "monitoring"
TARGETS = ROOT / "analyzer" / "targets"

# What the traffic targets call, read from analyzer/targets/kserve/target.py and
# analyzer/targets/argo/target.py (both through kubernetes.client.CustomObjectsApi):
#   KServeTarget._get    get_namespaced_custom_object   serving.kserve.io inferenceservices
#   KServeTarget._patch_predictor  patch_namespaced_custom_object (canaryTrafficPercent)
#   ArgoRolloutTarget._get   get_namespaced_custom_object   argoproj.io rollouts
#   ArgoRolloutTarget._patch patch_namespaced_custom_object (spec.paused=false)
#                            patch_namespaced_custom_object_status (abort / promoteFull)
# test_rbac_table_matches_the_target_code re-derives this from the source, so a new call in a
# target fails here until RBAC (and this table) follow.
# The traffic observer (analyzer/targets/kube_watch.py) lists and watches both kinds.
RBAC_NEEDED: dict[tuple[str, str], frozenset[str]] = {
    ("serving.kserve.io", "inferenceservices"): frozenset({"get", "list", "watch", "patch"}),
    ("argoproj.io", "rollouts"): frozenset({"get", "list", "watch", "patch"}),
    ("argoproj.io", "rollouts/status"): frozenset({"patch"}),
    # analyzer/targets/istio/target.py: a shadow run's mirror on an HTTP route
    ("networking.istio.io", "virtualservices"): frozenset({"get", "patch"}),
}
# CustomObjectsApi method -> (verb, subresource suffix).
CUSTOM_OBJECTS_VERBS = {
    "get_namespaced_custom_object": ("get", ""),
    "patch_namespaced_custom_object": ("patch", ""),
    "patch_namespaced_custom_object_status": ("patch", "/status"),
}

# Environment variables the manifests may set that are not settings of analyzer/config.py.
NON_SETTING_ENV = frozenset(
    {
        "PYTHONDONTWRITEBYTECODE",  # Dockerfile: nothing written beside the code
        "PYTHONUNBUFFERED",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "HOME",  # /tmp, the only writable path
    }
)
# Settings that are secrets by nature even where the type is not SecretStr (JSON with hashes).
SECRET_ENV_EXTRA = frozenset({"CANARY_ANALYZER_API__STATIC_TOKENS"})
# Placeholders standing in for Secret values when the manifests' environment is loaded.
SECRET_PLACEHOLDERS = {
    "CANARY_ANALYZER_DATABASE_URL": "postgresql+psycopg://canary@postgres.postgres.svc:5432/canary",
    "CANARY_ANALYZER_SERVICENOW__CLIENT_ID": "canary-analyzer",
    "CANARY_ANALYZER_SERVICENOW__CLIENT_SECRET": "s3cret",
    "CANARY_ANALYZER_SERVICENOW__USERNAME": "svc-canary",
    "CANARY_ANALYZER_SERVICENOW__PASSWORD": "s3cret",
    "CANARY_ANALYZER_API__STATIC_TOKENS": json.dumps(
        [{"subject": "argo-rollouts", "roles": ["analysis"], "token_sha256": "0" * 64}]
    ),
}

# Series Prometheus itself adds for every target; allowed besides the service's own.
PROMETHEUS_SYNTHETIC: dict[str, frozenset[str]] = {"up": frozenset()}
# Labels the Prometheus Operator attaches to every scraped series of a ServiceMonitor target.
TARGET_LABELS = frozenset(
    {"job", "namespace", "pod", "instance", "service", "container", "endpoint"}
)
PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "inf", "nan"}
)
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")


# -- loading ---------------------------------------------------------------------------------
def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


@functools.cache
def _parsed(path: Path) -> str:
    return json.dumps([d for d in yaml.safe_load_all(path.read_text()) if d is not None])


def _docs(path: Path) -> list[Any]:
    """The YAML documents of one file (parsed once; a fresh copy each call)."""
    docs: list[Any] = json.loads(_parsed(path))
    return docs


def _objects(*roots: Path) -> list[dict[str, Any]]:
    """Every Kubernetes object (not Kustomizations, not patches) under the given folders."""
    found = []
    for path in _yaml_files():
        if not any(root in path.parents for root in roots):
            continue
        for doc in _docs(path):
            if isinstance(doc, dict) and doc.get("kind") != "Kustomization":
                found.append(doc)
    return found


def _base() -> list[dict[str, Any]]:
    return _objects(BASE)


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def _pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = _pod_template(workload)["spec"]
    return spec


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = _pod_template(workload)["metadata"]["labels"]
    return labels


def _workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def _containers(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for workload in _workloads(objects):
        spec = _pod_spec(workload)
        yield from spec.get("initContainers", [])
        yield from spec["containers"]


@functools.cache
def _rendered(path: Path) -> str:
    """``kubectl kustomize`` output as JSON (rendered once per session), or "" without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return ""
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.dumps([d for d in yaml.safe_load_all(out.stdout) if d])


def _kustomize(path: Path) -> list[dict[str, Any]]:
    rendered = _rendered(path)
    if not rendered:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    objects: list[dict[str, Any]] = json.loads(rendered)
    return objects


# -- every file parses, every object names itself ---------------------------------------------
@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_document_parses_and_is_a_named_object(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        if isinstance(doc, list):  # a JSON 6902 patch, applied by a kustomization
            assert all({"op", "path"} <= set(op) for op in doc), path
            continue
        assert isinstance(doc, dict), f"{path}: a document is neither an object nor a patch"
        assert doc.get("apiVersion"), f"{path}: apiVersion missing"
        assert doc.get("kind"), f"{path}: kind missing"
        if doc["kind"] == "Kustomization":
            assert doc["apiVersion"].startswith("kustomize.config.k8s.io/")
            continue
        assert (doc.get("metadata") or {}).get("name"), f"{path}: {doc['kind']} has no name"


def test_grafana_dashboard_is_json_with_panels() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert all(p["targets"] for p in dashboard["panels"])


# -- Kustomize -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tree", [BASE, PRODUCTION], ids=["base", "production"])
def test_kustomization_references_exist(tree: Path) -> None:
    kustomization = yaml.safe_load((tree / "kustomization.yaml").read_text())
    referenced = list(kustomization.get("resources", []))
    referenced += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    assert referenced
    for ref in referenced:
        target = (tree / ref).resolve()
        assert target.exists(), f"{tree}/kustomization.yaml names {ref}, which does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{ref} is not a kustomization"
    # and nothing in the folder is forgotten
    listed = {(tree / r).resolve() for r in referenced}
    for path in tree.glob("*.yaml"):
        assert path.name == "kustomization.yaml" or path.resolve() in listed, f"{path} unused"


def test_base_renders_with_kustomize() -> None:
    kinds = sorted(o["kind"] for o in _kustomize(BASE))
    for kind in (
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CronJob",
        "Deployment",
        "Job",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ):
        assert kind in kinds


def test_production_overlay_pins_the_image_and_binds_rbac_per_namespace() -> None:
    objects = _kustomize(PRODUCTION)
    assert not [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert bindings
    assert all(b["metadata"]["namespace"] != "canary-analyzer" for b in bindings)
    for container in _containers(objects):
        assert re.search(r"@sha256:[0-9a-f]{64}$", container["image"]), container["image"]
    assert _one(objects, "Deployment")["spec"]["replicas"] >= 2


def test_documented_install_order_selects_the_right_objects() -> None:
    # docs/deploy.md applies the rendered overlay in three steps with these label selectors.
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "-l 'app.kubernetes.io/component notin (server,migrate)'" in docs
    assert "-l app.kubernetes.io/component=migrate" in docs
    objects = _kustomize(PRODUCTION)

    def component(obj: dict[str, Any]) -> str | None:
        return (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component")

    first = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if component(o) not in {"server", "migrate"}
    }
    second = {(o["kind"], o["metadata"]["name"]) for o in objects if component(o) == "migrate"}
    assert second == {("Job", "canary-analyzer-migrate")}
    # everything the migrate Job needs exists after the first step, the server does not
    for needed in (
        ("Namespace", "canary-analyzer"),
        ("ServiceAccount", "canary-analyzer-jobs"),
        ("NetworkPolicy", "canary-analyzer"),
        ("ExternalSecret", "canary-analyzer"),
    ):
        assert needed in first
    assert ("Deployment", "canary-analyzer") not in first


# -- RBAC ------------------------------------------------------------------------------------------
# Shared helpers in analyzer/targets/kube.py that make a CustomObjectsApi call for a target, by
# the call they make (checked against kube.py's source below).
KUBE_HELPERS = {"get_custom_object": "get_namespaced_custom_object"}


def test_kube_helpers_make_the_calls_they_are_counted_as() -> None:
    tree = ast.parse((ROOT / "analyzer" / "targets" / "kube.py").read_text())
    for helper, method in KUBE_HELPERS.items():
        found = next(
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == helper
        )
        called = {n.attr for n in ast.walk(found) if isinstance(n, ast.Attribute)}
        assert method in called, f"{helper} no longer calls {method}"


def _helper_methods(node: ast.AST) -> set[str]:
    """The client methods that the ``KUBE_HELPERS`` called somewhere under ``node`` make."""
    return {
        KUBE_HELPERS[n.func.id]
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in KUBE_HELPERS
    }


def _base_class_methods() -> set[str]:
    """What every ``CustomObjectTarget`` subclass calls through the base (its ``_get``)."""
    tree = ast.parse((ROOT / "analyzer" / "targets" / "kube.py").read_text())
    base = next(
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "CustomObjectTarget"
    )
    return _helper_methods(base)


def _subclasses_base(node: ast.AST) -> bool:
    return isinstance(node, ast.ClassDef) and any(
        isinstance(b, ast.Subscript) and isinstance(b.value, ast.Name)
        and b.value.id == "CustomObjectTarget"
        for b in node.bases
    )  # fmt: skip


def test_the_base_class_scan_sees_the_get() -> None:
    assert _base_class_methods() == {"get_namespaced_custom_object"}


def _target_calls(path: Path) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource[/subresource]) -> verbs, read from one target module's AST (and,
    for a ``CustomObjectTarget`` subclass, from what the base class calls for it)."""
    tree = ast.parse(path.read_text())
    constants: dict[str, str] = {}
    methods: set[str] = set()
    for node in ast.walk(tree):
        if _subclasses_base(node):
            methods |= _base_class_methods()
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
            for target in node.targets:
                if isinstance(target, ast.Tuple):
                    for name, value in zip(target.elts, node.value.elts, strict=True):
                        if isinstance(name, ast.Name) and isinstance(value, ast.Constant):
                            constants[name.id] = str(value.value)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_api"
        ):
            methods.add(node.attr)
        is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if is_call and node.func.id in KUBE_HELPERS:  # type: ignore[union-attr]
            methods.add(KUBE_HELPERS[node.func.id])  # type: ignore[union-attr]
    calls: dict[tuple[str, str], set[str]] = {}
    for method in methods:
        assert method in CUSTOM_OBJECTS_VERBS, f"{path}: {method} is not mapped to an RBAC verb"
        verb, sub = CUSTOM_OBJECTS_VERBS[method]
        calls.setdefault((constants["GROUP"], constants["PLURAL"] + sub), set()).add(verb)
    return calls


def _watch_calls() -> dict[tuple[str, str], set[str]]:
    """The observer's list+watch: every kind it can watch needs list and watch."""
    tree = ast.parse((TARGETS / "kube_watch.py").read_text())
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {"list_namespaced_custom_object", "list_cluster_custom_object"} <= called
    assert "watch" in (TARGETS / "kube_watch.py").read_text()
    return {(k.group, k.plural): {"list", "watch"} for k in KINDS.values()}


def test_rbac_table_matches_the_target_code() -> None:
    derived: dict[tuple[str, str], set[str]] = {}
    calls = [_target_calls(TARGETS / name / "target.py") for name in ("kserve", "argo", "istio")]
    for found in [*calls, _watch_calls()]:
        for key, verbs in found.items():
            derived.setdefault(key, set()).update(verbs)
    assert derived == {k: set(v) for k, v in RBAC_NEEDED.items()}


def test_production_observer_watches_exactly_the_bound_namespaces() -> None:
    objects = _objects(PRODUCTION)
    bound = {o["metadata"]["namespace"] for o in objects if o["kind"] == "RoleBinding"}
    env = _one(objects, "ConfigMap", "canary-analyzer-env")["data"]
    assert set(json.loads(env["CANARY_ANALYZER_OBSERVER__NAMESPACES"])) == bound


def _granted(objects: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for role in (o for o in objects if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            assert "resourceNames" not in rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_rbac_grants_exactly_what_the_targets_call() -> None:
    roles = [o for o in _objects(DEPLOY) if o["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['metadata']['name']}: wildcard {field}"
    assert _granted(roles) == {k: set(v) for k, v in RBAC_NEEDED.items()}


def test_bindings_give_the_roles_to_the_server_account_only() -> None:
    objects = _objects(DEPLOY)
    role_names = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings
    for binding in bindings:
        assert binding["roleRef"]["name"] in role_names
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "canary-analyzer", "namespace": "canary-analyzer"}
        ]
    jobs_account = _one(_base(), "ServiceAccount", "canary-analyzer-jobs")
    assert jobs_account["automountServiceAccountToken"] is False
    for workload in _workloads(_base()):
        if workload["kind"] != "Deployment":
            spec = _pod_spec(workload)
            assert spec["serviceAccountName"] == "canary-analyzer-jobs"
            assert spec["automountServiceAccountToken"] is False


# -- metrics used by alerts and the dashboard ----------------------------------------------------
def _exported_series() -> dict[str, frozenset[str]]:
    """Series name -> label names, from the service's own registry construction."""
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    observer = ObserverMetrics(registry)  # on the API's registry in `serve`
    series: dict[str, frozenset[str]] = {}
    collectors = [
        v
        for source in (metrics, observer)
        for v in vars(source).values()
        if isinstance(v, MetricWrapperBase)
    ]
    assert len(collectors) >= 5
    for collector in collectors:
        labels = frozenset(collector._labelnames)  # no public accessor for an unlabelled parent
        for family in collector.describe():
            suffixes = {
                "counter": ("_total",),
                "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum"),
            }[family.type]
            for suffix in suffixes:
                extra = {"le"} if suffix == "_bucket" else set()
                series[family.name + suffix] = labels | extra
    names = {family.name for family in registry.collect()}
    assert {s.removesuffix("_total") for s in series if s.endswith("_total")} <= names
    return series


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def _selectors(expr: str) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
    """(metric name or None, [(label, op, value)]) for every ``{...}`` selector."""
    out = []
    for match in _SELECTOR.finditer(expr):
        matchers = _MATCHER.findall(match.group(2))
        out.append((match.group(1), matchers))
    return out


def _metric_names(expr: str) -> set[str]:
    """Every metric name in a PromQL expression (functions, keywords and labels removed)."""
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", expr)  # drop matchers
    text = _STRING.sub(" ", text)
    text = _GROUPING.sub(" ", text)  # by (le, route) ...
    text = re.sub(r"\[[^\]]*\]", " ", text)  # [5m], [1h:1m]
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or re.match(r"^\d", word):
            continue
        names.add(word)
    return names


def test_the_promql_name_extractor_sees_names_and_only_names() -> None:
    expr = (
        'sum by (le, route) (rate(foo_bucket{job="x", route=~"/a.*"}[5m])) / on () '
        "group_left bar > 0.5 unless absent(baz_total == 1) and histogram_quantile(0.99, q)"
    )
    assert _metric_names(expr) == {"foo_bucket", "bar", "baz_total", "q"}
    assert _selectors(expr)[0] == ("foo_bucket", [("job", "=", "x"), ("route", "=~", "/a.*")])


def _rule_expressions() -> list[str]:
    rule = _one(_objects(MONITORING), "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query["query"])
            assert inner, query
            exprs.append(inner.group(1))
    return exprs


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$namespace", "canary-analyzer")


def _route_templates() -> set[str]:
    """Route templates of analyzer/api/*.py, read from ``APIRouter(prefix=)`` and decorators.

    Read from the source rather than imported, which would pull in FastAPI (seconds).
    """
    routes = set()
    for path in sorted((ROOT / "analyzer" / "api").glob("*.py")):
        tree = ast.parse(path.read_text())
        prefix = ""
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "APIRouter"
            ):
                prefix = next(
                    (
                        str(k.value.value)
                        for k in node.keywords
                        if k.arg == "prefix" and isinstance(k.value, ast.Constant)
                    ),
                    "",
                )
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and isinstance(decorator.func.value, ast.Name)
                    and decorator.func.value.id == "router"
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                ):
                    routes.add(prefix + str(decorator.args[0].value))
    return routes


@pytest.mark.parametrize("source", ["prometheusrule", "grafana-dashboard"])
def test_monitoring_uses_only_exported_metrics_and_their_labels(source: str) -> None:
    exprs = (
        _rule_expressions()
        if source == "prometheusrule"
        else [_grafana_to_promql(e) for e in _dashboard_expressions()]
    )
    assert exprs
    exported = _exported_series() | PROMETHEUS_SYNTHETIC
    routes = _route_templates()
    used: set[str] = set()
    for expr in exprs:
        names = _metric_names(expr)
        unknown = names - exported.keys()
        assert not unknown, f"not exported by analyzer/api/metrics.py: {unknown} in {expr}"
        used |= names
        for name, matchers in _selectors(expr):
            assert name, f"selector without a metric name in {expr}"
            for label, op, value in matchers:
                assert label in exported[name] | TARGET_LABELS, f"{name} has no label {label}"
                if label == "route" and op == "=":
                    assert value in routes, f"no route {value} in analyzer.api"
                if label == "job":
                    assert value == "canary-analyzer", "job is the Service's name"
    # every family the service exports is watched somewhere
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert len(families & {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported}) >= 4


def test_dashboard_covers_the_asked_for_views() -> None:
    text = " ".join(_dashboard_expressions())
    for needle in (
        "canary_analyzer_verdicts_total",
        "canary_analyzer_rollouts",
        "histogram_quantile(0.99, sum by (le, route)",
        "canary_analyzer_integration_errors_total",
        "canary_analyzer_ledger_appends_total",
    ):
        assert needle in text


def test_rollout_gauge_is_never_summed_across_replicas() -> None:
    # Every replica reports the same database count; sum() would multiply it by the replicas.
    for expr in _rule_expressions() + _dashboard_expressions():
        for match in re.finditer(
            r"(\w+)\s*(?:by\s*\([^)]*\)\s*)?\(\s*canary_analyzer_rollouts\b", expr
        ):
            assert match.group(1) in {"max", "min"}, expr


def test_alerts_have_severity_summary_and_runbook() -> None:
    rule = _one(_objects(MONITORING), "PrometheusRule")
    names = []
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            names.append(r["alert"])
            assert r["labels"]["severity"] in {"critical", "warning", "info"}
            assert r["annotations"]["summary"]
            assert r["annotations"]["runbook_url"]
    assert len(names) == len(set(names))
    for topic in ("Ledger", "Target", "ErrorVerdict", "Paused", "5xx", "NotReady"):
        assert any(topic in n for n in names), f"no alert about {topic}"


def test_promtool_accepts_the_rules_and_dashboard_queries(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    rule = _one(_objects(MONITORING), "PrometheusRule")
    dashboard = [
        {"record": f"dashboard:query{i}", "expr": _grafana_to_promql(e)}
        for i, e in enumerate(_dashboard_expressions())
    ]
    groups = [*rule["spec"]["groups"], {"name": "dashboard", "rules": dashboard}]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    out = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_argo_analysis_template_reaches_the_service() -> None:
    # deploy/argo/analysistemplate.yaml is another engineer's; the Service must match its URL,
    # and so must the blue/green ones (analysistemplate-bluegreen.yaml).
    templates = [o for o in _objects(DEPLOY / "argo") if o["kind"] == "AnalysisTemplate"]
    names = {t["metadata"]["name"] for t in templates}
    assert names == {
        "canary-analyzer", "canary-analyzer-preview", "canary-analyzer-post-promotion",
    }  # fmt: skip
    service = _one(_base(), "Service")
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    for template in templates:
        url = template["spec"]["metrics"][0]["provider"]["web"]["url"]
        match = re.fullmatch(
            r"https?://([^./:]+)\.([^./:]+)\.svc(?:\.cluster\.local)?:(\d+)(/.*)", url
        )
        assert match, url
        name, namespace, port, path = match.groups()
        assert (name, namespace) == (service["metadata"]["name"], kustomization["namespace"])
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}
        assert path in _route_templates()


def test_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    """``promtool test rules`` over the synthetic series in prometheusrule_test.yaml."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    rule = _one(_objects(MONITORING), "PrometheusRule")
    groups = json.loads(json.dumps(rule["spec"]["groups"]))
    for group in groups:
        for r in group["rules"]:
            r.pop("annotations", None)  # promtool would compare every templated text
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    cases = Path(__file__).with_name("prometheusrule_test.yaml")
    shutil.copy(cases, tmp_path / cases.name)
    out = subprocess.run(
        [promtool, "test", "rules", cases.name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_servicemonitor_scrapes_the_service() -> None:
    monitor = _one(_objects(MONITORING), "ServiceMonitor")
    service = _one(_base(), "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


# -- environment and settings --------------------------------------------------------------------
def _setting_path(name: str) -> tuple[str, ...] | None:
    """The settings field an env name sets, or None when it is not a setting."""
    if not name.startswith(config.ENV_PREFIX):
        return None
    parts = name[len(config.ENV_PREFIX) :].lower().split("__")
    model: type[BaseModel] = config.Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return None
            model = annotation
    return tuple(parts)


def _is_secret_setting(name: str) -> bool:
    path = _setting_path(name)
    assert path is not None
    model: type[BaseModel] = config.Settings
    for part in path[:-1]:
        annotation = model.model_fields[part].annotation
        assert isinstance(annotation, type)
        model = annotation
    return "SecretStr" in str(model.model_fields[path[-1]].annotation) or name in SECRET_ENV_EXTRA


def test_setting_path_resolver_rejects_typos() -> None:
    assert _setting_path("CANARY_ANALYZER_PROMETHEUS__URL") == ("prometheus", "url")
    assert _setting_path("CANARY_ANALYZER_PROMETHEUS__URI") is None
    assert _setting_path("CANARY_ANALYZER_API__HOST__X") is None
    assert _is_secret_setting("CANARY_ANALYZER_DATABASE_URL")
    assert not _is_secret_setting("CANARY_ANALYZER_API__HOST")


def _env_configmaps(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The data of every env ConfigMap, base and overlay patches alike (same names)."""
    return [
        o.get("data", {})
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-env")
    ]


def _dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(pair.split("=", 1) for pair in line[4:].split()))
    return env


def test_every_env_name_in_deploy_is_a_setting_or_documented() -> None:
    objects = _objects(DEPLOY)
    names = set(_dockerfile_env())
    for data in _env_configmaps(objects):
        names |= set(data)
    for container in _containers(objects):
        names |= {e["name"] for e in container.get("env", [])}
    assert "CANARY_ANALYZER_DATABASE_URL" in names
    for name in sorted(names):
        known = (
            _setting_path(name) is not None
            or name in config._ENV_NOT_SETTINGS
            or name in NON_SETTING_ENV
        )
        assert known, f"{name} is neither a setting of analyzer/config.py nor documented"


def test_secrets_come_from_secret_refs_never_from_configmaps() -> None:
    objects = _objects(DEPLOY)
    for data in _env_configmaps(objects):
        for key in data:
            if _setting_path(key):
                assert not _is_secret_setting(key), f"secret {key} in a ConfigMap"
    for container in _containers(objects):
        for env in container.get("env", []):
            if _setting_path(env["name"]) and _is_secret_setting(env["name"]):
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "canary-analyzer"
                assert ref["key"]


@pytest.mark.parametrize("tree", ["base", "production"])
def test_the_real_settings_loader_accepts_the_deployment_environment(
    tree: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    objects = _base() if tree == "base" else _kustomize(PRODUCTION)
    deployment = _one(objects, "Deployment")
    (container,) = _pod_spec(deployment)["containers"]
    config_maps = {
        o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for item in container["env"]:
        env[item["name"]] = item.get("value") or SECRET_PLACEHOLDERS[item["name"]]
    # the config file the ConfigMap mounts, at a path of this machine
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod_spec(deployment)["volumes"]}
    config_dir = Path(mounts["config"])
    assert Path(env["CANARY_ANALYZER_CONFIG_FILE"]).parent == config_dir
    file_data = config_maps[volumes["config"]["configMap"]["name"]]
    for filename, content in file_data.items():
        (tmp_path / filename).write_text(content)
    env["CANARY_ANALYZER_CONFIG_FILE"] = str(
        tmp_path / Path(env["CANARY_ANALYZER_CONFIG_FILE"]).name
    )

    for key in list(os.environ):
        if key.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(key)
    for key, value in {**_dockerfile_env(), **env}.items():
        if key.startswith(config.ENV_PREFIX) and key != "CANARY_ANALYZER_DATA_DIR":
            monkeypatch.setenv(key, value)
    settings = config.load_settings()
    assert settings.metric_source == "prometheus"
    assert settings.traffic_target == "kserve"
    assert settings.kubernetes.in_cluster is True
    assert settings.api.host == "0.0.0.0"
    assert settings.database_url is not None
    assert settings.api.static_tokens[0].roles == ("analysis",)
    assert settings.gates.change_window is not None  # hot-path steps need a calendar
    # The evaluation gate is configured but required by no policy (existing flows unchanged).
    assert settings.gates.evaluation is not None
    assert settings.gates.evaluation.required_suites == ("golden-set", "load-test")
    assert all(
        r.gate != "evaluation" for p in settings.gates.policy.tiers.values() for r in p.requirements
    )
    assert settings.ledger.checkpoints_enabled()  # signed head checkpoints (docs/ledger.md)
    assert settings.ledger.checkpoint_dir is not None
    if tree == "production":
        assert settings.api.oidc_issuer
        assert settings.api.oidc_jwks_url
        assert settings.servicenow.instance_url
    port = next(p for p in container["ports"] if p["name"] == "http")
    assert settings.api.port == port["containerPort"]


# -- pods: probes, security, placement ----------------------------------------------------------
def test_deployment_probes_point_at_readyz_and_healthz() -> None:
    deployment = _one(_base(), "Deployment")
    (container,) = _pod_spec(deployment)["containers"]
    ports = {p["name"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert {"/readyz", "/healthz"} <= _route_templates()


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_pods_run_non_root_on_a_read_only_root_filesystem(kind: str) -> None:
    workload = _one(_base(), kind)
    spec = _pod_spec(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    volumes = {v["name"]: v for v in spec["volumes"]}
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert "add" not in security["capabilities"]
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp, "/tmp must be mounted"
        assert "emptyDir" in volumes[tmp[0]["name"]], "/tmp must be a writable emptyDir"


def test_deployment_is_replicated_spread_and_protected() -> None:
    objects = _base()
    deployment = _one(objects, "Deployment")
    labels = _pod_labels(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    keys = {c["topologyKey"] for c in _pod_spec(deployment)["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for obj in (deployment, _one(objects, "PodDisruptionBudget")):
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one(objects, "Service")["spec"]["selector"].items() <= labels.items()
    assert _one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_migrate_job_runs_migrate_with_the_server_image() -> None:
    objects = _base()
    (server,) = _pod_spec(_one(objects, "Deployment"))["containers"]
    (migrate,) = _pod_spec(_one(objects, "Job", "canary-analyzer-migrate"))["containers"]
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == server["image"]
    (verify,) = _pod_spec(_one(objects, "CronJob"))["containers"]
    assert verify["args"][:2] == ["ledger", "verify"]


def test_the_verify_cronjob_checks_the_checkpoints_the_server_writes(tmp_path: Path) -> None:
    """The server writes checkpoints to the volume the CronJob reads, with the key the Secret
    holds, and the CronJob trusts the public keys of a ConfigMap that parse as Ed25519 keys."""
    from analyzer.ledger.checkpoint import load_public_keys

    objects = _base()
    server_spec = _pod_spec(_one(objects, "Deployment"))
    (server,) = server_spec["containers"]
    env = dict(_one(objects, "ConfigMap", "canary-analyzer-env")["data"])
    server_mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    server_volumes = {v["name"]: v for v in server_spec["volumes"]}
    checkpoint_dir = env["CANARY_ANALYZER_LEDGER__CHECKPOINT_DIR"]
    key_file = Path(env["CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY_FILE"])
    written = server_volumes[server_mounts[checkpoint_dir]]["persistentVolumeClaim"]["claimName"]
    key_volume = server_volumes[server_mounts[str(key_file.parent)]]["secret"]
    assert key_volume["secretName"] == "canary-analyzer"
    assert [i["path"] for i in key_volume["items"]] == [key_file.name]

    cron_spec = _pod_spec(_one(objects, "CronJob"))
    (verify,) = cron_spec["containers"]
    args = verify["args"]
    assert args[:2] == ["ledger", "verify"]
    read_dir, keys_dir = args[args.index("--checkpoints") + 1], args[args.index("--key") + 1]
    cron_mounts = {m["mountPath"]: m for m in verify["volumeMounts"]}
    cron_volumes = {v["name"]: v for v in cron_spec["volumes"]}
    assert cron_mounts[read_dir]["readOnly"] is True
    read = cron_volumes[cron_mounts[read_dir]["name"]]["persistentVolumeClaim"]
    assert read["claimName"] == written
    assert _one(objects, "PersistentVolumeClaim", written)["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    public = cron_volumes[cron_mounts[keys_dir]["name"]]["configMap"]["name"]
    for name, pem in _one(objects, "ConfigMap", public)["data"].items():
        (tmp_path / name).write_text(pem)
    assert len(load_public_keys([tmp_path])) >= 1


def test_network_policy_covers_every_pod_and_the_needed_peers() -> None:
    objects = _base()
    policy = _one(objects, "NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for workload in _workloads(objects):
        assert selector.items() <= _pod_labels(workload).items()
    namespaces = {
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
    }
    assert namespaces == {"argo-rollouts", "monitoring"}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 5432, 9090, 443} <= egress_ports


def test_production_replaces_the_placeholder_addresses() -> None:
    # The base's apiserver and ServiceNow peers are documentation ranges (RFC 5737).
    placeholders = ("192.0.2.", "198.51.100.", "203.0.113.")
    base_cidrs = _cidrs(_one(_base(), "NetworkPolicy"))
    assert any(c.startswith(placeholders) for c in base_cidrs)
    production = _cidrs(_one(_kustomize(PRODUCTION), "NetworkPolicy"))
    assert production
    assert not [c for c in production if c.startswith(placeholders)]


def _cidrs(policy: dict[str, Any]) -> list[str]:
    return [
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]


# -- image ---------------------------------------------------------------------------------------
def test_dockerfile_is_multi_stage_non_root_and_serves() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(stages) >= 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert all(s == "${PYTHON_IMAGE}" for s in stages)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert not re.search(r"^HEALTHCHECK", text, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["canary-analyzer"\]$', text, flags=re.M)
    assert re.search(r'^CMD \["serve"\]$', text, flags=re.M)
    assert _dockerfile_env()["CANARY_ANALYZER_API__HOST"] == "0.0.0.0"
    assert "--no-index" in text, "the runtime stage installs only the built wheels"


# --- the Argo AnalysisTemplate: what docs/argo.md says about bake, limits and timeouts -------


def _argo_template() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = yaml.safe_load((DEPLOY / "argo" / "analysistemplate.yaml").read_text())["spec"]
    (metric,) = spec["metrics"]
    defaults = {a["name"]: a.get("value") for a in spec["args"]}
    return metric, defaults


def test_argo_template_timeout_leaves_a_margin_above_the_service_deadline() -> None:
    metric, _ = _argo_template()
    web = metric["provider"]["web"]
    deadline = web["jsonBody"]["deadline_seconds"]
    service_default = config.ApiSettings().analysis_deadline_seconds
    # docs/argo.md: the service answers within its deadline; Argo's timeout is 3 s or more above
    # it, and the template asks for no more than the service's own default.
    assert deadline <= service_default
    assert web["timeoutSeconds"] - deadline >= 3
    assert web["timeoutSeconds"] <= 10 or web["timeoutSeconds"] - service_default >= 3


def test_argo_template_bake_and_limits_agree() -> None:
    metric, defaults = _argo_template()
    # count and interval are the bake the body carries (one source of truth: the args) ...
    assert metric["count"] == "{{args.looks}}"
    assert metric["interval"] == "{{args.interval}}"
    assert metric["provider"]["web"]["jsonBody"]["bake"] == {
        "looks": "{{args.looks}}",
        "interval": "{{args.interval}}",
    }
    # ... and docs/argo.md's rule: inconclusiveLimit = looks - 1, so a pass at the last look
    # (the horizon) makes the run Successful and a run without any pass ends Inconclusive.
    assert metric["inconclusiveLimit"] == "{{args.inconclusive-limit}}"
    assert int(defaults["inconclusive-limit"]) == int(defaults["looks"]) - 1
    assert metric["failureLimit"] == 0  # one fail (final) aborts
    assert metric["successCondition"] == 'result == "pass"'
    assert metric["failureCondition"] == 'result == "fail"'
