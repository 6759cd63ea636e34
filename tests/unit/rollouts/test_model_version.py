"""A rollout's registry version and artifact digest are checked where a rollout is asked for.

The domain (``StartRollout``) and the API body (``RolloutStartIn``, Pydantic's regex engine)
must refuse and accept exactly the same values, so each case runs against both.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from analyzer.api.schemas import RolloutStartIn
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier
from analyzer.rollouts.control import StartRollout

DIGEST = "sha256:" + "0123456789abcdef" * 4

GOOD_VERSIONS = ["17", "3.2.1", "3.2.1-rc.1+build.5", "v2_2026.11.27", "A" * 128]
BAD_VERSIONS = [
    ("", "is not a model version"),
    ("3.2.1 ", "is not a model version"),
    ("3.2.1\n", "is not a model version"),
    (" 17", "is not a model version"),
    ("-17", "is not a model version"),
    (".17", "is not a model version"),
    ("3.2/1", "is not a model version"),
    ("17;drop", "is not a model version"),
    ("17'", "is not a model version"),
    ("<b>17</b>", "is not a model version"),
    ("versión", "is not a model version"),
    ("A" * 129, "is 129 characters long; at most 128 are allowed"),
]
BAD_DIGESTS = [
    "",
    "0123456789abcdef" * 4,  # no algorithm
    "sha256:" + "0123456789ABCDEF" * 4,  # upper-case hex
    "sha256:" + "0" * 63,  # one digit short
    "sha256:" + "0" * 65,
    "sha256:" + "0" * 63 + "g",
    "sha512:" + "0" * 128,
    "SHA256:" + "0" * 64,
    "sha256 :" + "0" * 64,
    DIGEST + "\n",
]


def start(**changes: Any) -> StartRollout:
    return StartRollout(
        model=ModelRef(namespace="risk-prod", name="fraud"), tier=Tier.REGULATED,
        baseline_revision="fraud-00001", canary_revision="fraud-00002", profile="knative",
        **changes,
    )  # fmt: skip


def body(**changes: Any) -> RolloutStartIn:
    return RolloutStartIn.model_validate(
        {
            "model": {"namespace": "risk-prod", "name": "fraud"},
            "baseline_revision": "fraud-00001",
            "canary_revision": "fraud-00002",
            "profile": "knative",
            **changes,
        }
    )


@pytest.mark.parametrize("version", GOOD_VERSIONS)
def test_registry_versions_are_accepted(version: str) -> None:
    assert start(model_version=version).model_version == version
    assert body(model_version=version).model_version == version


@pytest.mark.parametrize(("version", "message"), BAD_VERSIONS)
def test_bad_model_versions_are_refused_naming_the_field(version: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as refused:
        start(model_version=version)
    assert refused.value.field == "model_version"
    assert str(refused.value).startswith("model_version: ")
    with pytest.raises(ValidationError) as invalid:
        body(model_version=version)
    assert [e["loc"] for e in invalid.value.errors()] == [("model_version",)]


def test_a_good_digest_is_accepted() -> None:
    assert start(artifact_digest=DIGEST).artifact_digest == DIGEST
    assert body(artifact_digest=DIGEST).artifact_digest == DIGEST


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_bad_digests_are_refused_naming_the_field(digest: str) -> None:
    with pytest.raises(InvalidInputError, match="expected 'sha256:' followed by 64") as refused:
        start(artifact_digest=digest)
    assert refused.value.field == "artifact_digest"
    with pytest.raises(ValidationError) as invalid:
        body(artifact_digest=digest)
    assert [e["loc"] for e in invalid.value.errors()] == [("artifact_digest",)]


def test_a_long_bad_digest_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidInputError) as refused:
        start(artifact_digest="sha256:" + "z" * 500)
    assert len(str(refused.value)) < 200


def test_both_are_optional() -> None:
    request = start()
    assert (request.model_version, request.artifact_digest) == (None, None)
    parsed = body()
    assert (parsed.model_version, parsed.artifact_digest) == (None, None)
