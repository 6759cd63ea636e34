"""Kayenta canary configurations as analysis profiles, with a report of what maps and how well.

``canary-analyzer profiles import-kayenta CONFIG.json`` reads a Kayenta ``canary-config`` (the
JSON Spinnaker stores, or a ``{"canaryConfig", "executionRequest"}`` ad-hoc request) and writes a
profile YAML. Every field it reads lands in the report as one of:

* ``exact``: the profile means what the config meant (a Kayenta metric becomes a ``samples``
  metric, judged by our port of Kayenta's classifier, docs/statistics-samples.md; direction,
  critical, mustHaveData, nanStrategy, effect sizes, outlier removal, muted, groups and their
  weights carry over).
* ``approximate``: close, but check it (a query whose revision label had to be assumed, a
  metric in several groups, a renamed metric).
* ``not_mapped``: no counterpart (score thresholds, metric stores we do not read). A metric
  whose query cannot be translated is written **commented out**: a profile never silently
  judges less than the config did without saying so, and the
  CLI exits 1 so automation notices.

Kayenta's ``${scope}`` (the revision under test) becomes ``{revision}``; ``${location}`` and
``${namespace}`` become ``{namespace}``. Templates are checked by the profile loader's own
checks, so what is written loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from analyzer.domain.errors import InvalidInputError
from analyzer.metrics.base import QueryLanguage
from analyzer.metrics.dialects import check_query_template

Status = Literal["exact", "approximate", "not_mapped"]
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
_KAYENTA_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DIRECTIONS = {"increase", "decrease", "either"}
_EFFECT_KEYS = {
    "allowedIncrease": "allowed_increase",
    "allowedDecrease": "allowed_decrease",
    "criticalIncrease": "critical_increase",
    "criticalDecrease": "critical_decrease",
}
# What Kayenta's scope variables stand for here.
_VARIABLES = {"scope": "revision", "location": "namespace", "namespace": "namespace"}


@dataclass(frozen=True, kw_only=True, slots=True)
class MappingLine:
    """One line of the report: a config field, where it went, and how faithfully."""

    path: str
    status: Status
    target: str
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status, "target": self.target, "note": self.note}


@dataclass(kw_only=True)
class KayentaImport:
    """The profile YAML and the mapping report of one imported config."""

    name: str
    profile: dict[str, Any]
    # (why, the metric as far as it was mapped, whether leaving it out judges less than Kayenta)
    skipped: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    report: list[MappingLine] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every metric Kayenta would score is in the profile (muted ones need not be)."""
        return not any(weakens for _, _, weakens in self.skipped)

    def yaml(self) -> str:
        """The profile as YAML; metrics that could not be mapped follow, commented out."""
        counts = {s: sum(1 for m in self.report if m.status == s) for s in _STATUSES}
        header = [
            f"# Imported from Kayenta canary config {self.name!r} by "
            "`canary-analyzer profiles import-kayenta`.",
            f"# Mapping: {counts['exact']} exact, {counts['approximate']} approximate, "
            f"{counts['not_mapped']} not mapped (the report lists each field).",
            "# Kayenta's test is fixed-horizon: see docs/statistics-samples.md before relying on",
            "# repeated looks.",
        ]
        text = (
            "\n".join(header)
            + "\n"
            + yaml.safe_dump(self.profile, sort_keys=False, allow_unicode=True, width=100)
        )
        for reason, metric, _ in self.skipped:
            text += f"\n# NOT MAPPED ({reason}):\n"
            dumped = yaml.safe_dump([metric], sort_keys=False, allow_unicode=True, width=100)
            text += "".join(f"# {line}\n" for line in dumped.splitlines())
        return text

    def report_text(self) -> str:
        width = max((len(m.path) for m in self.report), default=4)
        lines = [f"{'status':<12} {'field':<{width}}  -> target: note"]
        lines += [
            f"{m.status:<12} {m.path:<{width}}  -> {m.target}" + (f": {m.note}" if m.note else "")
            for m in self.report
        ]
        return "\n".join(lines)


_STATUSES: tuple[Status, ...] = ("exact", "approximate", "not_mapped")


class _Importer:
    def __init__(self, config: Mapping[str, Any], step_seconds: float | None) -> None:
        self.config = config
        self.step_seconds = step_seconds
        self.report: list[MappingLine] = []

    def note(self, path: str, status: Status, target: str, note: str = "") -> None:
        self.report.append(MappingLine(path=path, status=status, target=target, note=note))


def import_kayenta(document: Any, *, default_name: str = "kayenta") -> KayentaImport:
    """Translate a Kayenta canary config (or an ad-hoc request wrapping one) into a profile."""
    if not isinstance(document, Mapping):
        raise InvalidInputError("a Kayenta canary config is a JSON object")
    config = document.get("canaryConfig", document)
    request = document.get("executionRequest") if "canaryConfig" in document else None
    if not isinstance(config, Mapping) or not isinstance(config.get("metrics"), list):
        raise InvalidInputError("not a Kayenta canary config: no metrics list", field="metrics")
    importer = _Importer(config, _step(request))
    name = str(config.get("name") or default_name).strip() or default_name
    importer.note("name", "exact", "name")
    profile: dict[str, Any] = {"name": name}
    if config.get("description"):
        importer.note("description", "approximate", "(comment)", "kept as the YAML's comment")
    _judge(importer)
    language = _language(config)
    if language is QueryLanguage.DATADOG:
        profile["query_language"] = "datadog"
    weights = _group_weights(importer)
    if weights:
        profile["group_weights"] = weights
    _thresholds(importer, request)
    metrics, skipped = _metrics(importer, language)
    profile["metrics"] = metrics
    return KayentaImport(name=name, profile=profile, skipped=skipped, report=importer.report)


def _step(request: Any) -> float | None:
    try:
        scope = request["scopes"]["default"]["controlScope"]
        return float(scope["step"])
    except (KeyError, TypeError, ValueError):
        return None


def _judge(importer: _Importer) -> None:
    judge = importer.config.get("judge")
    name = judge.get("name") if isinstance(judge, Mapping) else None
    if name in (None, "NetflixACAJudge-v1.0"):
        importer.note(
            "judge.name", "exact", "kind: samples",
            "every metric is judged by our port of NetflixACAJudge-v1.0 (Mann-Whitney)",
        )  # fmt: skip
    else:
        importer.note(
            "judge.name", "not_mapped", "kind: samples",
            f"judge {name!r} is not Kayenta's default; metrics get NetflixACAJudge's rules",
        )  # fmt: skip


def _language(config: Mapping[str, Any]) -> QueryLanguage:
    types = [
        str((m.get("query") or {}).get("type", "")).lower()
        for m in config["metrics"]
        if isinstance(m, Mapping)
    ]
    if types.count("datadog") > types.count("prometheus"):
        return QueryLanguage.DATADOG
    return QueryLanguage.PROMQL


def _group_weights(importer: _Importer) -> dict[str, float]:
    classifier = importer.config.get("classifier") or {}
    raw = classifier.get("groupWeights") if isinstance(classifier, Mapping) else None
    if not raw:
        return {}
    weights = {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
    total = sum(weights.values())
    if any(w < 0 for w in weights.values()) or total > 100 + 1e-9:
        importer.note(
            "classifier.groupWeights", "not_mapped", "group_weights",
            f"weights sum to {total:g} (or are negative): Kayenta's score would leave 0-100; "
            "set group_weights by hand",
        )  # fmt: skip
        return {}
    used = {
        g
        for m in importer.config["metrics"]
        if isinstance(m, Mapping)
        for g in m.get("groups") or ()
    }
    unused = sorted(set(weights) - used)
    note = (
        f"groups without metrics ({', '.join(unused)}) keep their weight out of reach, "
        "as in Kayenta"
        if unused
        else ""
    )
    importer.note("classifier.groupWeights", "exact", "group_weights", note)
    return weights


def _thresholds(importer: _Importer, request: Any) -> None:
    classifier = importer.config.get("classifier") or {}
    if isinstance(classifier, Mapping) and classifier.get("scoreThresholds"):
        importer.note(
            "classifier.scoreThresholds", "not_mapped", "-",
            "the verdict comes from the sequential tests, not from the score; Kayenta's judge "
            "ignores these too (only the execution request's thresholds count)",
        )  # fmt: skip
    if isinstance(request, Mapping) and request.get("thresholds"):
        importer.note(
            "executionRequest.thresholds", "not_mapped", "-",
            "pass/marginal score thresholds have no counterpart: the verdict is pass, fail or "
            "inconclusive from the tests; the score is reported beside it",
        )  # fmt: skip
    if importer.step_seconds is not None:
        importer.note(
            "executionRequest.scopes.default.controlScope.step", "exact", "query.step_seconds"
        )


def _metric_name(raw: Any, index: int, seen: set[str]) -> str:
    base = _METRIC_NAME.sub("_", str(raw or f"metric_{index}")).strip("_")[:96] or f"metric_{index}"
    name, n = base, 2
    while name in seen:
        name, n = f"{base}_{n}", n + 1
    seen.add(name)
    return name


def _metrics(
    importer: _Importer, language: QueryLanguage
) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any], bool]]]:
    metrics: list[dict[str, Any]] = []
    skipped: list[tuple[str, dict[str, Any], bool]] = []
    seen: set[str] = set()
    for index, raw in enumerate(importer.config["metrics"]):
        where = f"metrics[{index}]"
        if not isinstance(raw, Mapping):
            importer.note(where, "not_mapped", "-", "not an object")
            continue
        name = _metric_name(raw.get("name"), index, seen)
        status: Status = "exact" if name == raw.get("name") else "approximate"
        importer.note(f"{where}.name", status, f"metrics.{name}", "" if status == "exact" else (
            f"{raw.get('name')!r} renamed: metric names are [A-Za-z0-9_.-]"
        ))  # fmt: skip
        metric: dict[str, Any] = {"name": name, "kind": "samples"}
        canary = (raw.get("analysisConfigurations") or {}).get("canary") or {}
        muted = _analysis(importer, f"{where}.analysisConfigurations.canary", canary, metric)
        _groups(importer, where, raw.get("groups") or [], metric)
        query, reason = _query(importer, where, raw.get("query") or {}, language)
        if query is None:
            metric["query"] = {"kayenta": dict(raw.get("query") or {})}
            # a muted metric never counted in Kayenta: leaving it out judges no less
            skipped.append((reason, metric, not muted))
            continue
        metric["query"] = query
        metrics.append(metric)
    return metrics, skipped


def _analysis(
    importer: _Importer, where: str, canary: Mapping[str, Any], metric: dict[str, Any]
) -> bool:
    """Per-metric judging settings; returns whether the metric is muted."""
    direction = str(canary.get("direction", "either"))
    metric["direction"] = direction if direction in _DIRECTIONS else "either"
    importer.note(
        f"{where}.direction", "exact", "direction",
        "" if "direction" in canary else "Kayenta's default `either` written out (ours: increase)",
    )  # fmt: skip
    metric["critical"] = bool(canary.get("critical", False))
    importer.note(f"{where}.critical", "exact", "critical")
    metric["must_have_data"] = bool(canary.get("mustHaveData", False))
    importer.note(
        f"{where}.mustHaveData", "exact", "must_have_data",
        "no data never passes here either: without mustHaveData it is inconclusive",
    )  # fmt: skip
    strategy = str(canary.get("nanStrategy", "remove"))
    metric["nan_strategy"] = "replace" if strategy == "replace" else "remove"
    importer.note(f"{where}.nanStrategy", "exact", "nan_strategy")
    effect = canary.get("effectSize")
    if isinstance(effect, Mapping) and effect:
        measure = (
            "cles" if str(effect.get("measure", "meanRatio")).lower() == "cles" else "mean_ratio"
        )
        metric["effect_size"] = {"measure": measure} | {
            ours: float(effect[theirs]) for theirs, ours in _EFFECT_KEYS.items() if theirs in effect
        }
        importer.note(f"{where}.effectSize", "exact", "effect_size")
    outliers = canary.get("outliers")
    if isinstance(outliers, Mapping) and str(outliers.get("strategy", "keep")) == "remove":
        factor = outliers.get("outlierFactor", 3.0)
        metric["outliers"] = {"strategy": "remove", "factor": float(factor)}
        importer.note(
            f"{where}.outliers", "exact", "outliers",
            "IQR fences with reduced sensitivity, as Kayenta's judge; beware sparse series "
            "(Kayenta made removal opt-in after it discarded real regressions: #420, #633)",
        )  # fmt: skip
    if canary.get("muted"):
        metric["muted"] = True
        importer.note(
            f"{where}.muted", "exact", "muted",
            "judged and reported, never counted in the verdict or the score",
        )  # fmt: skip
        return True
    return False


def _groups(importer: _Importer, where: str, groups: list[Any], metric: dict[str, Any]) -> None:
    if not groups:
        return
    metric["group"] = str(groups[0])
    if len(groups) == 1:
        importer.note(f"{where}.groups", "exact", "group")
    else:
        importer.note(
            f"{where}.groups", "approximate", "group",
            f"in {len(groups)} groups in Kayenta (counted in each); here only in {groups[0]!r}",
        )  # fmt: skip


def _query(
    importer: _Importer, where: str, query: Mapping[str, Any], language: QueryLanguage
) -> tuple[dict[str, Any] | None, str]:
    kind = str(query.get("type") or query.get("serviceType") or "").lower()
    path = f"{where}.query"
    wanted = "datadog" if language is QueryLanguage.DATADOG else "prometheus"
    if kind not in ("prometheus", "datadog"):
        reason = f"metric store {kind or 'unknown'!r} is not read here (Prometheus, Datadog)"
        importer.note(path, "not_mapped", "query", reason)
        return None, reason
    if kind != wanted:
        reason = f"a {kind} query in a config that is mostly {wanted}: one profile reads one source"
        importer.note(path, "not_mapped", "query", reason)
        return None, reason
    translate = _prometheus_expr if kind == "prometheus" else _datadog_expr
    try:
        expr, notes = translate(importer, query)
        check_query_template(expr, language, key="expr", field=f"{path}")
    except InvalidInputError as exc:
        reason = f"query not translatable: {exc}"
        importer.note(path, "not_mapped", "query", reason)
        return None, reason
    out: dict[str, Any] = {"expr": expr}
    if language is QueryLanguage.DATADOG:
        out["language"] = "datadog"
    if importer.step_seconds is not None and kind == "prometheus":
        out["step_seconds"] = importer.step_seconds
    importer.note(path, "approximate" if notes else "exact", "query.expr", "; ".join(notes))
    return out, ""


def _substitute(text: str, *, quoted_default: str) -> tuple[str, list[str]]:
    """Kayenta ``${variable}`` → our placeholders; a bare one gets an assumed label."""
    notes: list[str] = []
    out, pos = "", 0
    for match in _KAYENTA_VARIABLE.finditer(text):
        variable = match.group(1)
        if variable not in _VARIABLES:
            raise InvalidInputError(f"Kayenta variable ${{{variable}}} has no counterpart")
        ours = _VARIABLES[variable]
        before = text[: match.start()]
        inside_quotes = (before.count('"') - before.count('\\"')) % 2 == 1 or before.count(
            "'"
        ) % 2 == 1
        out += text[pos : match.start()]
        if inside_quotes:
            out += "{" + ours + "}"
        else:
            out += quoted_default.format(label=ours, value="{" + ours + "}")
            notes.append(f"${{{variable}}} was a whole matcher: assumed label {ours!r}")
        pos = match.end()
    return out + text[pos:], notes


def _prometheus_expr(importer: _Importer, query: Mapping[str, Any]) -> tuple[str, list[str]]:
    inline = query.get("customInlineTemplate")
    if inline:
        text = str(inline)
        text = text.removeprefix("PromQL:")
        return _substitute(text, quoted_default='{label}="{value}"')
    metric = str(query.get("metricName") or "")
    if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", metric):
        raise InvalidInputError(f"metricName {metric!r} is not a Prometheus metric name")
    notes = ["Kayenta's default Prometheus query is avg(metric{filter}); written out as such"]
    template_name = query.get("customFilterTemplate")
    templates = importer.config.get("templates") or {}
    if template_name and template_name in templates:
        matchers, more = _substitute(
            str(templates[template_name]), quoted_default='{label}="{value}"'
        )
    elif query.get("customFilter"):
        matchers, more = _substitute(str(query["customFilter"]), quoted_default='{label}="{value}"')
    else:
        matchers = 'revision="{revision}"'
        more = [
            "no filter: the revision label is assumed to be 'revision' "
            "(in Kayenta the account's scopeLabel names it)"
        ]
    if query.get("groupByFields"):
        more.append("groupByFields dropped: every series' points are pooled")
    return f"avg({metric}{{{matchers}}})", notes + more


def _datadog_expr(importer: _Importer, query: Mapping[str, Any]) -> tuple[str, list[str]]:
    metric = str(query.get("metricName") or "")
    if not re.fullmatch(r"(?:[a-z0-9]+:)?[A-Za-z][A-Za-z0-9_.]*", metric):
        raise InvalidInputError(f"metricName {metric!r} is not a Datadog metric query")
    notes = []
    if ":" not in metric:
        metric = f"avg:{metric}"
        notes.append("space aggregation avg assumed")
    notes.append(
        "Kayenta appends the scope as a tag (e.g. version:<scope>); the tag is assumed to be "
        "`version` (Datadog's unified service tag)"
    )
    return f"{metric}{{version:{{revision}}}}", notes
