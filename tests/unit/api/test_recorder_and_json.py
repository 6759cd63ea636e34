"""Pure helpers of the analysis service: JSON safety and profile digests."""

from __future__ import annotations

import json
import math

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.service import json_safe, profile_digest


def test_json_safe_replaces_non_finite_numbers_everywhere() -> None:
    value = {"a": math.inf, "b": [1.0, -math.inf, {"c": math.nan}], "d": (2, "x")}
    safe = json_safe(value)
    assert safe == {"a": "inf", "b": [1.0, "-inf", {"c": None}], "d": [2, "x"]}
    json.dumps(safe, allow_nan=False)


def test_profile_digest_is_stable_and_content_sensitive() -> None:
    catalog = ProfileCatalog(None)
    _, knative = catalog.resolve("knative")
    _, again = ProfileCatalog(None).resolve("knative")
    _, istio = catalog.resolve("istio")
    assert profile_digest(knative) == profile_digest(again)
    assert profile_digest(knative) != profile_digest(istio)
    name, inline = catalog.resolve(
        {"name": "x", "metrics": [{"use": "knative/errors", "tolerance": 0.5}]}
    )
    assert name == "inline:x"
    assert profile_digest(inline) != profile_digest(knative)


def test_a_value_without_non_finite_numbers_is_kept_and_reads_the_same_as_json() -> None:
    value = {"a": 1.5, "b": [1, (2.0, "x")], 3: {"c": None}}
    assert json_safe(value) is value  # nothing to replace: not walked nor copied
    walked = {"a": 1.5, "b": [1, [2.0, "x"]], "3": {"c": None}}
    assert json.dumps(json_safe(value)) == json.dumps(walked)
