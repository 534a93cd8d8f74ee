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
