"""Registry URIs: pinned forms accepted, mutable or unpinned forms refused with the reason."""

from __future__ import annotations

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.registry.base import ModelUri, parse_model_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/fraud-scorer/17", ModelUri(name="fraud-scorer", version="17")),
        ("models:/fraud.scorer_v2/1", ModelUri(name="fraud.scorer_v2", version="1")),
        ("models:/fraud-scorer@champion", ModelUri(name="fraud-scorer", alias="champion")),
        ("models:/Credit PD@challenger-2", ModelUri(name="Credit PD", alias="challenger-2")),
    ],
)
def test_pinned_uris_parse(text: str, expected: ModelUri) -> None:
    assert parse_model_uri(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("models:/fraud/latest", "'latest' moves whenever a version is registered"),
        ("models:/fraud/LATEST", "'latest' moves"),
        ("models:/fraud/Production", "stage 'Production' moves"),
        ("models:/fraud/staging", "stage 'staging' moves"),
        ("models:/fraud/Archived", "stage 'Archived' moves"),
        ("models:/fraud", "it names no version"),
        ("models:/fraud/0", "'0' is not a registry version number"),
        ("models:/fraud/1.2", "'1.2' is not a registry version number"),
        ("models:/fraud/v3", "'v3' is not a registry version number"),
        ("models:/fraud@latest", "'latest' is not an alias"),
    ],
)
def test_mutable_or_unpinned_uris_are_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_model_uri(text)
    assert why in str(caught.value)
    assert "is not pinned to one model version" in str(caught.value)
    assert caught.value.field == "artifact_uri"


@pytest.mark.parametrize(
    "text",
    [
        "s3://bucket/fraud/model.pkl",
        "runs:/abc123/model",
        "models:/../etc/1",
        "models:/fraud@",
        "models:/fraud@1bad",
        "models:/@champion",
        "models:/ fraud/1",
        "models:/fraud<script>/1",
    ],
)
def test_other_or_malformed_uris_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_model_uri(text)


def test_pinned_form_of_an_alias_exists_only_after_resolution() -> None:
    with pytest.raises(ValueError, match="only after it is resolved"):
        _ = ModelUri(name="fraud", alias="champion").pinned
    assert ModelUri(name="fraud", version="3").pinned == "models:/fraud/3"
