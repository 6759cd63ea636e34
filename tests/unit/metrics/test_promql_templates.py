"""Placeholders, label-value validation and escaping: nothing unsafe is ever substituted."""

from __future__ import annotations

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.metrics.base import validate_revision
from analyzer.metrics.templates import check_template, render

VALUES = {"namespace": "models", "model": "fraud", "revision": "fraud-00002", "window": "3600s"}

INJECTIONS = [
    'fraud"}',  # closes the matcher and the selector
    'x",revision_name=~".*',  # widens the selector to every revision
    "=~.*",
    "a\\b",  # backslash escapes
    "a\nb",  # newline
    "a,b",  # a second matcher
    "a{b}",
    "a'b",
    "a`b",
    "Fraud",  # upper case is not DNS-1123
    "-fraud",
    "",
    "a" * 254,
    "fraud-00002 or vector(1)",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_unsafe_revisions_are_refused(value: str) -> None:
    with pytest.raises(InvalidInputError, match="canary"):
        validate_revision(value, field="canary")


@pytest.mark.parametrize("value", INJECTIONS)
def test_render_refuses_unsafe_values_for_every_placeholder(value: str) -> None:
    for name in ("namespace", "model", "revision"):
        with pytest.raises(InvalidInputError, match="unsafe value"):
            render('m{a="{' + name + '}"}', {**VALUES, name: value})


def test_exact_matcher_gets_the_value_verbatim() -> None:
    out = render('m{ns="{namespace}",rev="{revision}"}[{window}]', VALUES)
    assert out == 'm{ns="models",rev="fraud-00002"}[3600s]'


def test_regex_matcher_escapes_dots() -> None:
    # "." in a regex matches any character: iris.v1 must not also select irisXv1.
    out = render('m{pod=~"{revision}-deployment-.*"}', {**VALUES, "revision": "iris.v1"})
    assert out == 'm{pod=~"iris\\\\.v1-deployment-.*"}'
    raw = render("m{pod=~`{revision}-.*`}", {**VALUES, "revision": "iris.v1"})
    assert raw == "m{pod=~`iris\\.v1-.*`}"


def test_placeholder_with_suffix_inside_quotes() -> None:
    out = render('istio{destination_workload="{revision}-deployment"}', VALUES)
    assert out == 'istio{destination_workload="fraud-00002-deployment"}'


def test_unknown_placeholder_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown placeholder \{revison\}"):
        check_template('m{rev="{revison}"}', field="query.selector")


def test_identifier_outside_quotes_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="inside a quoted label value"):
        check_template("m{rev={revision}}")


def test_window_may_appear_outside_quotes() -> None:
    assert check_template('increase(m{a="{revision}"}[{window}])') == {"revision", "window"}


def test_regex_quantifiers_are_not_placeholders() -> None:
    assert check_template('m{code=~"5[0-9]{2}"}') == frozenset()


def test_unterminated_string_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unterminated"):
        check_template('m{a="{revision}}')


def test_missing_value_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no value"):
        render('m{a="{revision}"}', {"namespace": "models"})


def test_bad_window_value_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unsafe value"):
        render("m[{window}]", {"window": "1h] or vector(1) #"})
