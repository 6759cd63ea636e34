"""docs/configuration.md, generated from the settings model (``canary-analyzer config docs``).

Every key of :class:`analyzer.config.Settings` is walked, nested sections included, and gets a
row: its dotted key, its environment variable, its type and bounds, its default, whether it is a
secret, and what it is for. The description is the field's ``description=`` when it has one, or
else the comment written next to it in the source (above it, or at the end of its line): the
comments that explain a setting to the next engineer are the ones the operator reads, so the two
cannot disagree. The output depends on nothing but the code (the home directory is written
``~``), so ``config docs --check`` can fail whenever the file and the model drift.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import textwrap
import tokenize
import types
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from analyzer.config import ENV_PREFIX, Settings

REGENERATE_COMMAND = "canary-analyzer config docs > docs/configuration.md"
SECRET_FILE_SUFFIX = "_FILE"


@dataclass(frozen=True, kw_only=True)
class SettingRow:
    """One documented setting."""

    key: str  # dotted, e.g. api.oidc_issuer; list items as api.static_tokens[].subject
    env: str | None  # None: set only inside its parent's JSON value (items of lists and maps)
    type: str
    default: str
    secret: bool
    description: str


@dataclass(frozen=True, kw_only=True)
class SectionDoc:
    """A nested section (a sub-model), introduced by its class docstring."""

    key: str
    env: str | None
    summary: str


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds: directly, optionally, or as items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += _models_in(arg)
    return found


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is SecretStr:
        return "secret string"
    if origin is Literal:
        return " | ".join(json.dumps(a.value if isinstance(a, Enum) else a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin in (frozenset, set):
        return f"set of {_type_name(args[0])}"
    if origin in (dict,):
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        if issubclass(annotation, Enum):
            return " | ".join(json.dumps(m.value) for m in annotation)
        if issubclass(annotation, Path):
            return "path"
        return _PLAIN_NAMES.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


_PLAIN_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "AwareDatetime": "date-time with offset",
}

_BOUNDS: tuple[tuple[type[Any], str, str], ...] = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.MinLen, "min_length", "min length"),
    (annotated_types.MaxLen, "max_length", "max length"),
)


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attribute)}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _default_value(info: FieldInfo, name: str, parent_default: BaseModel | None) -> Any:
    """The field's default, as the parent section's own default instance has it.

    ``api.rate_limit_audit`` defaults to ``RateLimitSettings(per_second=5.0, burst=30)``, not
    to the class's field defaults: the instance is what the service runs with.
    """
    if parent_default is not None:
        return getattr(parent_default, name)
    if info.is_required():
        return PydanticUndefined
    return info.get_default(call_default_factory=True)


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "(required)"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        return "`" + ("~" + text[len(home) :] if text.startswith(home) else text) + "`"
    try:
        rendered = json.dumps(value, default=_json_default, ensure_ascii=False)
    except TypeError:
        rendered = repr(value)
    return f"`{rendered}`"


def _json_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)  # a set's order varies between runs
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(type(value).__name__)


@cache
def _field_comments(cls: type[BaseModel]) -> dict[str, str]:
    """The comments written next to each field of ``cls`` (above it, or after it)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments.get(line, ""))
            line -= 1
        end = (node.end_lineno or node.lineno) + 1
        after = [comments[n] for n in range(node.lineno, end) if comments.get(n)]
        text = " ".join(part for part in [*above, *after] if part)
        if text:
            found[node.target.id] = text
    return found


def _comment_for(model: type[BaseModel], name: str) -> str:
    for cls in model.__mro__:
        if isinstance(cls, type) and issubclass(cls, BaseModel) and name in cls.__annotations__:
            return _field_comments(cls).get(name, "")
    return ""


def _summary(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or ""
    if doc.startswith(("A base class", "Usage docs:")) or model.__doc__ is None:
        return ""
    return " ".join(doc.split())


def walk(
    model: type[BaseModel] = Settings,
    prefix: str = "",
    env_prefix: str | None = ENV_PREFIX,
    parent_default: BaseModel | None = None,
) -> Iterator[SettingRow | SectionDoc]:
    """Every setting under ``model``: its own keys first (in declaration order), then each
    nested section, introduced by a :class:`SectionDoc`, so a table never mixes levels."""
    later: list[tuple[SectionDoc, Iterator[SettingRow | SectionDoc]]] = []
    for name, info in model.model_fields.items():
        default = _default_value(info, name, parent_default)
        key = f"{prefix}{name}"
        env = None if env_prefix is None else f"{env_prefix}{name.upper()}"
        annotation = info.annotation
        nested = _models_in(annotation)
        description = " ".join((info.description or _comment_for(model, name)).split())
        if nested and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section = SectionDoc(key=key, env=env, summary=_summary(annotation) or description)
            inner = walk(
                annotation,
                f"{key}.",
                None if env is None else f"{env}__",
                default if isinstance(default, BaseModel) else None,
            )
            later.append((section, inner))
            continue
        yield SettingRow(
            key=key,
            env=env,
            type=_type_name(annotation) + (f" ({b})" if (b := _bounds(info)) else ""),
            default=_default(default),
            secret=_is_secret(annotation),
            description=description,
        )
        origin = get_origin(annotation)
        for sub in nested:
            # Items of lists and maps, and optional sections, are given as one JSON/YAML value.
            suffix = "[]" if origin is tuple else "{…}" if origin is dict else ""
            section = SectionDoc(key=f"{key}{suffix}", env=None, summary=_summary(sub))
            later.append((section, walk(sub, f"{key}{suffix}.", None)))
    for section, inner in later:
        yield section
        yield from inner


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


_HEADER = f"""# Configuration reference

<!-- Generated by `canary-analyzer config docs` from analyzer/config.py; do not edit by hand.
     tests/unit/config/test_configuration_docs.py fails when this file and the settings drift:
     regenerate with `{REGENERATE_COMMAND}`. -->

Every setting of the service, from the settings model itself. Where a value comes from, highest
first: options given on the command line (`serve --host/--port` only), then environment
variables, then the YAML file named by `CANARY_ANALYZER_CONFIG_FILE`, then the defaults below.
Unknown keys are refused in the environment and in the file, naming the key.

- **Environment names**: `CANARY_ANALYZER_` + the dotted key in upper case with `__` between
  sections (`api.oidc_issuer` → `CANARY_ANALYZER_API__OIDC_ISSUER`). Lists and maps are given
  as JSON (`CANARY_ANALYZER_API__STATIC_TOKENS='[{{"subject": …}}]'`); keys shown as
  `x[].y` or `x{{…}}.y` are fields of the items inside such a value and have no variable of
  their own.
- **Secrets** (`secret` column) are never logged or shown. Each can instead be read from a file
  (a Vault Agent template, a Secrets Store CSI volume, a Kubernetes Secret volume): set the
  variable with `{SECRET_FILE_SUFFIX}` appended to a path, e.g.
  `CANARY_ANALYZER_DATABASE_URL{SECRET_FILE_SUFFIX}=/vault/secrets/database-url`. The file is read
  again when it changes (docs/identity.md, Secrets from files).
- The same keys nest in the YAML file: `api: {{oidc_issuer: https://…}}`.
"""


def render(model: type[BaseModel] = Settings) -> str:
    """The whole of docs/configuration.md."""
    out = [_HEADER]
    table_open = False

    def open_table() -> None:
        nonlocal table_open
        if not table_open:
            out.append("| key | environment | type | default | secret | description |")
            out.append("|---|---|---|---|---|---|")
            table_open = True

    out.append("\n## Top level\n")
    for item in walk(model):
        if isinstance(item, SectionDoc):
            out.append(f"\n## `{item.key}`\n")
            if item.env is not None:
                out.append(f"Environment prefix `{item.env}__`.\n")
            if item.summary:
                out.append(item.summary + "\n")
            table_open = False
            continue
        open_table()
        env = f"`{item.env}`" if item.env else "(in the parent's value)"
        out.append(
            f"| `{item.key}` | {env} | {_cell(item.type)} | {_cell(item.default)} | "
            f"{'yes' if item.secret else ''} | {_cell(item.description)} |"
        )
    return "\n".join(out).rstrip() + "\n"


def secret_env_names(model: type[BaseModel] = Settings) -> list[str]:
    """The environment names of every secret setting (each also accepts ``…_FILE``)."""
    return [i.env for i in walk(model) if isinstance(i, SettingRow) and i.secret and i.env]
