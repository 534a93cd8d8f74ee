"""Writing answers.toml for the solutions (students type theirs by hand).

A small TOML writer for what the book uses: top-level keys and [exN] tables of strings,
numbers and booleans. Other sections in the file are kept as they are.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)  # a TOML basic string


def render(data: dict) -> str:
    top = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = "\n".join(top) + ("\n" if top else "")
    for name, table in data.items():
        if isinstance(table, dict):
            out += f"\n[{name}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in table.items())
    return out


def update(root: Path, section: str | None, values: dict) -> Path:
    """Set `values` at the top level (section None) or in [section] of answers.toml."""
    path = root / "answers.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if section is None:
        data.update(values)
    else:
        data.setdefault(section, {}).update(values)
    path.write_text(render(data), encoding="utf-8")
    return path
