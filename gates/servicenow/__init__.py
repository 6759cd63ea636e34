"""ServiceNow change-request gate over the Table API (httpx; see ``docs/gates.md`` for why)."""

from gates.servicenow.auth import (
    BasicCredentials,
    Credentials,
    OAuth2Credentials,
    read_secret_file,
)
from gates.servicenow.client import ServiceNowTableClient
from gates.servicenow.gate import ServiceNowChangeGate, ServiceNowGateConfig, TableReader

__all__ = [
    "BasicCredentials",
    "Credentials",
    "OAuth2Credentials",
    "ServiceNowChangeGate",
    "ServiceNowGateConfig",
    "ServiceNowTableClient",
    "TableReader",
    "read_secret_file",
]
