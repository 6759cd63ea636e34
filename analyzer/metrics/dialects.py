"""Template checks per query language: the one place that knows which checker reads which.

Profiles are checked at load time and again before a look (``analysis.check_inputs``), with the
checker of the language the metric's query is written in (``MetricQuery.language``).
"""

from __future__ import annotations

import re

from analyzer.domain.errors import InvalidInputError
from analyzer.metrics.base import QueryLanguage
from analyzer.metrics.datadog.query import SELECTOR as DATADOG_SELECTOR
from analyzer.metrics.datadog.query import check_datadog_template
from analyzer.metrics.templates import check_template

TEMPLATE_KEYS = ("selector", "events", "total", "expr")
# A plain PromQL series selector (the source wraps it in ranges and offsets): metric{matchers}.
PROMQL_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{.*\}\s*$", re.DOTALL)
_SELECTOR_EXAMPLE = {
    QueryLanguage.PROMQL: 'metric_bucket{label="{revision}"}',
    QueryLanguage.DATADOG: "metric.bucket{kube_deployment:{revision}-deployment}",
}


def check_query_template(
    template: str,
    language: QueryLanguage,
    *,
    key: str,
    field: str | None = None,
    shape: bool = True,
) -> frozenset[str]:
    """Check one template (``key``: selector, events, total or expr) in its language.

    ``shape``: also require selectors to be plain series selectors (profile load time).
    """
    if language is QueryLanguage.DATADOG:
        used = check_datadog_template(template, field=field)
        selector = DATADOG_SELECTOR
    else:
        used = check_template(template, field=field)
        selector = PROMQL_SELECTOR
    if shape and key != "expr" and not selector.match(template):
        raise InvalidInputError(
            f"must be a plain series selector, e.g. {_SELECTOR_EXAMPLE[language]}; computed "
            "values belong in a samples or threshold metric's expr",
            field=field,
        )
    return used
