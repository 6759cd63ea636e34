"""docs/reliability.md names the test behind each claim: every named test must exist.

The report cites tests as `path/to/test_file.py::test_name`, `test_file.py::test_name` (a file
named earlier or unique under tests/), `::test_name` or a bare `test_name` (the file cited last).
A renamed or deleted test would leave a claim without its proof; this catches it.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reliability.md"
_TOKEN = re.compile(r"`([^`\s]+)`")


def _resolve(name: str) -> Path:
    path = REPO / name
    if path.exists():
        return path
    found = sorted(REPO.glob(f"tests/**/{name}"))
    assert len(found) == 1, f"docs/reliability.md names {name}: found {found or 'nothing'}"
    return found[0]


def cited_tests() -> list[tuple[Path, str]]:
    cited: list[tuple[Path, str]] = []
    current: Path | None = None
    for token in _TOKEN.findall(DOC.read_text(encoding="utf-8")):
        file, _, test = token.partition("::")
        if file.endswith(".py") and ("tests/" in file or file.startswith("test_")):
            current = _resolve(file)
        elif file.startswith("tests/") and file.endswith("/"):
            assert (REPO / file).is_dir(), f"docs/reliability.md names {file}: no such folder"
            continue
        elif file or not test:
            if re.fullmatch(r"test_\w+", token) and current is not None:
                cited.append((current, token))
            continue
        if test:
            assert current is not None, f"{token}: no test file named before it"
            cited.append((current, test))
    return cited


def test_every_test_the_reliability_report_cites_exists() -> None:
    cited = cited_tests()
    assert len(cited) >= 50  # the report's tables cite tests, not only prose
    missing = [
        f"{path.relative_to(REPO)}::{name}"
        for path, name in cited
        if not re.search(rf"^(async )?def {name}\(", path.read_text(encoding="utf-8"), re.M)
    ]
    assert missing == []
