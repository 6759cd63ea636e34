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
# Module-level loggers bind their processors on first use when caching is on (cheaper per line).
# Tests turn it off so that ``structlog.testing.capture_logs`` sees every event whichever test
# configured logging first.
cache_loggers = True


def configure_logging(
    level: str = "info", fmt: Literal["json", "console"] = "json", *, force: bool = False
) -> None:
    global _configured  # noqa: PLW0603 - configuring process-wide logging is inherently global
    if _configured and not force:
        return
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Plain tracebacks: the default (rich, with locals) takes seconds per exception, on
        # the thread that logged it.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Our lines and other libraries' (httpx, uvicorn, APScheduler) go through one stdlib
    # handler: one lock, so lines written by concurrent threads never interleave, and one
    # renderer, so a JSON log stream holds JSON lines only.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    # Alembic narrates every schema check at INFO; only its warnings matter to operators.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # APScheduler logs every tick at INFO; the engine logs what the ticks did.
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=cache_loggers,
    )
    _configured = True
