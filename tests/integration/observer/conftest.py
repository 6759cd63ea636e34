"""The API harness of tests/integration/api, for the observer's acceptance tests."""

from tests.integration.api.conftest import make_api

__all__ = ["make_api"]
