"""Failures of the ServiceNow Table API client, placed in the project's error taxonomy.

    IntegrationError
    ├── RetryableError
    │   ├── ServiceNowTimeoutError           no answer within the configured timeout
    │   └── ServiceNowUnavailableError       connection refused/reset, or a 5xx answer
    └── FatalIntegrationError
        ├── ServiceNowAuthError              401/403, or the OAuth token endpoint refused us
        ├── ServiceNowMalformedResponseError not JSON, or not the ``{"result": [...]}`` envelope
        │                                    (a hibernating instance answers 200 with HTML)
        └── ServiceNowRequestError           any other 4xx (bad table, bad query)

The gate turns every one of these into a closed decision whose reason is the message, so
messages are single sentences with no secrets and no response bodies beyond ServiceNow's own
short ``error.message``.
"""

from __future__ import annotations

from analyzer.domain.errors import FatalIntegrationError, RetryableError


class ServiceNowTimeoutError(RetryableError):
    """ServiceNow did not answer in time."""


class ServiceNowUnavailableError(RetryableError):
    """ServiceNow could not be reached or answered with a server error."""


class ServiceNowAuthError(FatalIntegrationError):
    """ServiceNow refused the credentials or the integration user lacks the rights."""


class ServiceNowMalformedResponseError(FatalIntegrationError):
    """The answer was not the Table API's JSON envelope."""


class ServiceNowRequestError(FatalIntegrationError):
    """ServiceNow rejected the request itself (4xx other than 401/403)."""
