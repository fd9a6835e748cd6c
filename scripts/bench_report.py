"""What every bench script ends with: one Markdown table under a line naming the machine, printed and
written to OUT/NAME.md, and the rows with the machine to OUT/NAME.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(out: Path, name: str, header: str, table: str, machine: dict[str, Any], rows: list[dict]) -> None:
    print(header)
    print(table)
    (out / f"{name}.md").write_text(header + "\n\n" + table + "\n")
    (out / f"{name}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1, default=str))
