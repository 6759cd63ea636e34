"""The one exit-code table of every ``canary-analyzer`` command (docs/cli.md prints it).

tests/integration/cli/test_exit_codes.py runs each command into each situation and checks the
code, so the table and the commands cannot drift apart.
"""

from __future__ import annotations

EXIT_OK = 0
# The command ran and reports the negative outcome it exists to find (a broken ledger chain;
# the demo's canaries not ending as designed). Not used for errors.
EXIT_NEGATIVE = 1
# Bad usage or invalid input, including a request the service refused (4xx): the message on
# stderr says what to fix; retrying unchanged will fail again.
EXIT_USAGE = 2
# Something the command needs is unavailable: the API unreachable or failing (5xx), the database
# unreachable, the listen port in use (uvicorn's start-up failure code). Retrying later may work.
EXIT_UNAVAILABLE = 3
# A bug: an unexpected exception (its traceback is on stderr). BSD sysexits' EX_SOFTWARE.
EXIT_INTERNAL = 70

EXIT_CODES: tuple[tuple[int, str, str], ...] = (
    (EXIT_OK, "success", "the command did what it was asked"),
    (
        EXIT_NEGATIVE,
        "negative outcome",
        "the command ran and reports what it exists to find: `ledger verify` on a broken chain "
        "(naming the first bad entry) or, with `--checkpoints`, a signed checkpoint the chain no "
        "longer holds or whose signature fails; `ledger checkpoint` on a broken chain (nothing "
        "signed); `demo` when its canaries did not end as designed",
    ),
    (
        EXIT_USAGE,
        "bad usage or input, or refused",
        "unknown option, invalid file or setting, unmigrated database, or a request the service "
        "refused (4xx: bad token, missing role, unknown rollout); stderr says what to fix",
    ),
    (
        EXIT_UNAVAILABLE,
        "unavailable",
        "something needed could not be reached or failed: the API (connection refused, "
        "timeout, 5xx), the database, or the listen port (`serve` when it is in use); retry "
        "later",
    ),
    (
        EXIT_INTERNAL,
        "internal error",
        "an unexpected exception, a bug: the traceback is on stderr; please report it",
    ),
)


def exit_code_table() -> str:
    """The table in Markdown (docs/cli.md and README link to it)."""
    rows = ["| code | meaning | when |", "|---|---|---|"]
    rows += [f"| {code} | {name} | {when} |" for code, name, when in EXIT_CODES]
    return "\n".join(rows) + "\n"
