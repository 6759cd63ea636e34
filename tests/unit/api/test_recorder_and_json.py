"""Pure helpers of the analysis service: JSON safety and profile digests."""

from __future__ import annotations

import json
import math

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.service import json_safe, json_text, profile_digest
from analyzer.ledger.chain import canonical_json


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


def test_a_results_text_is_canonical_and_safe() -> None:
    """A look's result is stored as the ledger's canonical text (its compaction cuts it)."""
    value = {"b": [1.0, "é"], "a": {"z": 2, "y": 0.1}}
    kept, text = json_text(value, canonical=True)
    assert kept is value
    assert text == canonical_json(value) == '{"a":{"y":0.1,"z":2},"b":[1.0,"é"]}'
    safe, text = json_text({"b": math.nan, "a": -math.inf}, canonical=True)
    assert safe == {"b": None, "a": "-inf"}
    assert text == '{"a":"-inf","b":null}'
    # anything else keeps json.dumps' form (a judge state may mix key types)
    assert json_text({3: 1, "a": 2})[1] == '{"3": 1, "a": 2}'
