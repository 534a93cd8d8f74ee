"""Blue/green production (docker mode): which colour is live, and on what.

Production is two model servers, `serving-blue` and `serving-green`, each pinned to one
model version on the image built from that version's commit, behind a proxy
(`serving-production`, nginx) that forwards to the live one. A new version is started on
the idle colour and checked there, on the internal network, before anything changes for
clients; then the alias moves, the proxy switches with a graceful reload (one event for
every client: the old colour's connections finish, new ones go to the new colour), and
the old colour stops (the proxy's file compose/proxy/nginx.conf says how the switch is
one event). This module holds the state kept in `.lab/production.json` and the
proxy's upstream file; labctl.docker drives the containers.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

COLOURS = ("blue", "green")
# The proxy's last resort: holds a request until the live colour answers again.
HOLD = "serving-hold"


@dataclass
class Production:
    live: str = "blue"
    # colour -> {"version": "3", "tag": "<git sha>"}
    colours: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def idle(self) -> str:
        return COLOURS[1 - COLOURS.index(self.live)]

    def serving(self) -> dict[str, str] | None:
        return self.colours.get(self.live)

    def env(self) -> dict[str, str]:
        """What compose/compose.yaml reads for each colour; a colour never started gets the
        defaults (the :production tag, following the alias), which nothing starts."""
        out = {}
        for colour in COLOURS:
            spec = self.colours.get(colour, {})
            out[f"PRODUCTION_{colour.upper()}_VERSION"] = spec.get("version", "")
            out[f"PRODUCTION_{colour.upper()}_TAG"] = spec.get("tag", "production")
        return out


def state_file(lab_dir: Path) -> Path:
    return lab_dir / "production.json"


def load(lab_dir: Path) -> Production | None:
    """The saved state; None when there is none or it is unreadable (make up rebuilds it
    from the registry's @production). Before the first promotion, the live colour serves
    nothing yet (no entry in `colours`)."""
    try:
        raw = json.loads(state_file(lab_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("live") not in COLOURS:
        return None
    colours = {}
    for colour in COLOURS:
        spec = raw.get("colours", {}).get(colour)
        if isinstance(spec, dict) and str(spec.get("version", "")).isdigit():
            tag = str(spec.get("tag", ""))
            if tag and all(c.isalnum() or c in "._-" for c in tag):
                colours[colour] = {"version": str(spec["version"]), "tag": tag}
    return Production(raw["live"], colours)


def save(lab_dir: Path, state: Production) -> None:
    """Written whole to a temporary file, then renamed: never half a state."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    path = state_file(lab_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"live": state.live, "colours": state.colours}, indent=2) + "\n")
    os.replace(tmp, path)


def upstream_text(colour: str, backup: str | None = None) -> str:
    for name in (colour, backup):
        if name is not None and name not in COLOURS:
            raise ValueError(f"no production colour {name!r}")
    lines = [
        "# Written by make (labctl.production): the live production colour.",
        f"server serving-{colour}:8080;",
    ]
    if backup is not None:  # during a switch: where requests go once the live one drains
        lines.append(f"server serving-{backup}:8080 backup;")
    # Where requests wait while the live colour restarts (compose/proxy/hold.py).
    lines.append(f"server {HOLD}:8080 backup;")
    return "\n".join(lines) + "\n"


def write_upstream(lab_dir: Path, colour: str, backup: str | None = None) -> str:
    """The proxy's upstream file, readable by its unprivileged user, replaced atomically,
    and a new generation for it (served on /proxy/generation once nginx has loaded it).
    Returns the generation."""
    folder = lab_dir / "proxy"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    generation = uuid.uuid4().hex[:12]
    for name, text in (
        ("upstream.conf", upstream_text(colour, backup)),
        ("generation.conf", f'return 200 "{generation}\\n";\n'),
    ):
        tmp = folder / f"{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, folder / name)
    return generation
