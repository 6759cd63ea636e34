"""structlog configuration: JSON lines (or a console renderer), configured once per process.

Context such as the request id, the actor or the rollout id is bound with
``structlog.contextvars.bound_contextvars(...)`` at the edges and appears on every line logged
inside that scope.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_configured = False


def configure_logging(
    level: str = "info", fmt: Literal["json", "console"] = "json", *, force: bool = False
) -> None:
    global _configured  # noqa: PLW0603 - configuring process-wide logging is inherently global
    if _configured and not force:
        return
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s", force=True)
    # Alembic narrates every schema check at INFO; only its warnings matter to operators.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # APScheduler logs every tick at INFO; the engine logs what the ticks did.
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True
