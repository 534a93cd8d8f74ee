"""What the docker lab weighs: its images on disk and its idle memory.

    .venv/bin/python -m bench.weight images memory   # against the running docker lab
    make weight                                       # the same, written to reports/weight/

`images`: each of the lab's own images (the ones it builds and tags by commit) by size,
and all of them together with shared layers counted once: the size of one `docker save`
of them all, which stores each layer once. `memory`: `docker stats` of the running
project's containers, one sample, and their sum. Both compare with the targets (no
image over 500 MB, 1.5 GB together, the idle stack under 1 GB) and with the figures the
lab had before it was slimmed (docs/images.md); exit 1 when a target is missed
only with --strict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from labctl.images import local_size
from labctl.processes import ROOT

IMAGES = ("mlflow", "training", "gatekeeper", "serving", "loadtests")
TARGETS = {"image_mb": 500, "images_total_mb": 1500, "idle_mb": 1000}
# Measured before the lab was slimmed (docker mode, `docker image ls`, `docker stats`).
BEFORE = {
    "images_mb": {
        "mlflow": 991,
        "training": 706,
        "gatekeeper": 610,
        "serving": 455,
        "loadtests": 201,
    },
    "idle_mb": 1540,
}
UNITS = {"b": 1, "kb": 1e3, "kib": 1024, "mb": 1e6, "mib": 1024**2, "gb": 1e9, "gib": 1024**3}


def to_bytes(text: str) -> float:
    """'312.5MiB' -> bytes (docker's units, binary and decimal)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]+)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise ValueError(f"not a size: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2).lower()]


def parse_stats(lines: list[str]) -> dict[str, float]:
    """`docker stats --format '{{.Name}}\\t{{.MemUsage}}'` lines -> {name: MB}."""
    found = {}
    for line in lines:
        if not line.strip():
            continue
        name, usage = line.split("\t", 1)
        found[name] = round(to_bytes(usage.split("/")[0]) / 1e6, 1)
    return found


def _docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, **kw)


def _settings() -> tuple[str, str, str]:
    """The registry address, the image tag (the commit) and the compose project, as make
    resolves them."""
    from labctl import settings

    s = settings.load(ROOT, dict(os.environ))
    return s.get("LAB_REGISTRY"), s.get("GIT_SHA"), s.get("COMPOSE_PROJECT_NAME", "mlops-lab")


def images(registry: str, tag: str) -> dict:
    refs = {}
    sizes = {}
    for name in IMAGES:
        ref = f"{registry}/mlops-lab/{name}:{tag}"
        size = local_size(ref)
        if size is None:
            print(f"weight: {ref} is not in the engine (make build builds it)", file=sys.stderr)
            continue
        refs[name] = ref
        sizes[name] = round(size / 1e6)
    if not refs:
        raise SystemExit(f"weight: none of the lab's images for {tag} is in the engine")
    # One archive of them all holds each layer once (the base image's too).
    save = subprocess.Popen(["docker", "save", *refs.values()], stdout=subprocess.PIPE)
    total = 0
    assert save.stdout is not None
    while chunk := save.stdout.read(1 << 20):
        total += len(chunk)
    if save.wait() != 0:
        raise RuntimeError("docker save failed")
    return {"images_mb": sizes, "images_total_mb": round(total / 1e6)}


def memory(project: str) -> dict:
    names = _docker(
        "ps", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}"
    ).stdout.split()
    if not names:
        raise RuntimeError(f"no running containers in project {project!r}: make up first")
    out = _docker("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *names).stdout
    per = parse_stats(out.splitlines())
    return {"containers_mb": per, "idle_mb": round(sum(per.values()))}


def verdicts(found: dict) -> list[str]:
    lines = []
    if "images_mb" in found:
        for name, mb in found["images_mb"].items():
            before = BEFORE["images_mb"].get(name)
            ok = "ok" if mb <= TARGETS["image_mb"] else "OVER"
            lines.append(f"image {name}: {mb} MB (before {before} MB) [{ok}, <= 500]")
        total = found["images_total_mb"]
        ok = "ok" if total <= TARGETS["images_total_mb"] else "OVER"
        lines.append(f"images together (layers once): {total} MB [{ok}, <= 1500]")
    if "idle_mb" in found:
        for name, mb in sorted(found["containers_mb"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name}: {mb:.0f} MB")
        idle = found["idle_mb"]
        ok = "ok" if idle <= TARGETS["idle_mb"] else "OVER"
        lines.append(f"idle stack: {idle} MB (before {BEFORE['idle_mb']} MB) [{ok}, <= 1000]")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.weight", description=__doc__)
    p.add_argument("what", nargs="+", choices=("images", "memory"))
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "weight")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    registry, tag, project = _settings()
    found: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tag": tag}
    if "images" in args.what:
        found.update(images(registry, tag))
    if "memory" in args.what:
        found.update(memory(project))
    lines = verdicts(found)
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "weight.json").write_text(json.dumps(found, indent=2))
    missed = [line for line in lines if "[OVER" in line]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
