"""Models (what is rolled out) and their identity."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from analyzer.domain.errors import InvalidInputError

# Kubernetes object names: DNS-1123 subdomain for names, DNS-1123 label for namespaces.
# Validating here means a model name can never smuggle PromQL, SQL or path syntax downstream.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Tier(StrEnum):
    """Risk tier of a model; decides which promotion gates apply."""

    HOT_PATH = "hot-path"
    REGULATED = "regulated"
    STANDARD = "standard"
    LONG_TAIL = "long-tail"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRef:
    """A model's identity: its Kubernetes namespace and name."""

    namespace: str
    name: str

    def __post_init__(self) -> None:
        if not _DNS1123_LABEL.match(self.namespace):
            raise InvalidInputError(
                f"namespace {self.namespace!r} is not a DNS-1123 label "
                "(lower-case letters, digits and '-', at most 63 characters)",
                field="model.namespace",
            )
        if not _DNS1123_SUBDOMAIN.match(self.name):
            raise InvalidInputError(
                f"name {self.name!r} is not a DNS-1123 subdomain "
                "(lower-case letters, digits, '-' and '.', at most 253 characters)",
                field="model.name",
            )

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``NAMESPACE/NAME``."""
        namespace, sep, name = text.partition("/")
        if not sep:
            raise InvalidInputError(f"expected NAMESPACE/NAME, got {text!r}", field="model")
        return cls(namespace=namespace, name=name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
