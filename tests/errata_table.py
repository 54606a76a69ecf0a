"""docs/errata.md's tables as rows, for the errata tests (imported by name: pytest puts tests/ on sys.path)."""

import re
from pathlib import Path

ERRATA = Path(__file__).resolve().parents[1] / "docs" / "errata.md"


def errata_rows(id_pattern: str) -> dict[str, dict[str, str]]:
    """Row ID -> {column name: cell text} for every table row whose ID matches `id_pattern` (e.g. r"[EC]\\d\\d")."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in ERRATA.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "ID":
            header = cells
        elif header and re.fullmatch(id_pattern, cells[0]):
            assert len(cells) == len(header), f"row {cells[0]} has {len(cells)} cells, header has {len(header)}"
            rows[cells[0]] = dict(zip(header, cells))
    return rows
