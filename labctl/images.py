"""The lab's pinned images, read from compose/compose.yaml (standard library only).

compose/compose.yaml is the one place the Python base image is named: the x-build entry
passes it to every Dockerfile as the build argument PYTHON_IMAGE, whose default it is. The
lab's tooling needs the same image outside a build (an image with bash and tar that is
pulled anyway), so it reads the default from there instead of keeping a copy.
"""

from __future__ import annotations

import re
import subprocess

# ${PYTHON_IMAGE:-default}: what Compose substitutes when PYTHON_IMAGE is unset or empty.
_PYTHON_IMAGE_DEFAULT = re.compile(r"\$\{PYTHON_IMAGE:-([^}\s]+)\}")
# Every upstream image: ${POSTGRES_IMAGE:-postgres:15...@sha256:...} and the like.
_IMAGE_DEFAULT = re.compile(r"\$\{([A-Z][A-Z0-9_]*_IMAGE):-([^}\s]+)\}")
# The host names Docker Hub goes by in an image reference.
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
# The prefix `make bundle` names digest-pinned images by: a loaded image keeps its tags
# but not the digest it was pulled by (moby/moby#22011), so the lab runs it by this name.
BUNDLE_PREFIX = "mlops-lab-bundle"


def default_python_image(compose_text: str) -> str:
    """The default of ${PYTHON_IMAGE:-...} in a compose file's text.

    Raises ValueError when the file names no default, or more than one different default
    (the image would then depend on which service is built).
    """
    found = set(_PYTHON_IMAGE_DEFAULT.findall(compose_text))
    if not found:
        raise ValueError("the compose file has no ${PYTHON_IMAGE:-...} default")
    if len(found) > 1:
        raise ValueError(f"the compose file names several PYTHON_IMAGE defaults: {sorted(found)}")
    return found.pop()


def upstream_defaults(compose_text: str) -> dict[str, str]:
    """Every `${NAME_IMAGE:-default}` of a compose file: variable -> pinned upstream image.

    Comment lines are skipped. Raises ValueError when a variable has two different
    defaults (which image runs would depend on the service)."""
    found: dict[str, str] = {}
    for line in compose_text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for var, default in _IMAGE_DEFAULT.findall(line):
            if found.setdefault(var, default) != default:
                raise ValueError(f"the compose file names several {var} defaults")
    return found


def through_mirror(ref: str, mirror: str) -> str | None:
    """`ref` pulled through a Docker Hub pull-through cache at `mirror` (host:port):
    `postgres:15` -> `host:port/library/postgres:15`, `nginxinc/nginx:1` ->
    `host:port/nginxinc/nginx:1`. None for an image of another registry (quay.io...):
    such a cache serves one upstream only."""
    first, slash, rest = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if first not in DOCKER_HUB:
            return None
        ref = rest
        slash = "/" if "/" in rest else ""
    return f"{mirror}/{ref if slash else 'library/' + ref}"


def bundle_name(ref: str) -> str:
    """The tag a classroom bundle gives a digest-pinned image, from its name, tag and
    digest: `postgres:15.14@sha256:496f...` -> `mlops-lab-bundle/postgres:15.14-496f07cd16df`."""
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    path = re.sub(r"[^a-z0-9._/-]+", "-", name.lower()).strip("-/")
    short = digest.partition(":")[2][:12]
    return f"{BUNDLE_PREFIX}/{path}:{'-'.join(p for p in (tag, short) if p) or 'latest'}"


def has_image(runner, ref: str) -> bool:
    """The Docker engine holds `ref` (pulled, built or loaded); `runner` is a
    labctl.runner.Runner."""
    return runner.ok(["docker", "image", "inspect", "--format", "{{.Id}}", ref])


def local_size(ref: str) -> int | None:
    """Bytes of an image in the local Docker engine (`docker image inspect`), or None when
    the engine does not hold it (or does not answer)."""
    try:
        r = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", ref],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # no docker command
        return None
    out = r.stdout.strip()
    return int(out) if r.returncode == 0 and out.isdigit() else None
