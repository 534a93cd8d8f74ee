"""The lab's state as one file, for moving a docker-mode lab between machines (CI jobs).

    STATE_FILE (default lab-state.tgz) = gzip'd tar of
      meta/manifest   format, project, S3 backend, volumes, git sha, date
      meta/env        the lab's .env (its generated secrets: keep the file private)
      <volume>/...    one folder per volume, numeric owners and modes kept

The archive's contents are checked before anything changes: the manifest must name the
volumes this lab has, and meta/env must be a regular file (a symlink could smuggle a host
file into `.env`).
"""

from __future__ import annotations

import io
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabError
from labctl.settings import S3_BACKENDS, check_dotenv, documented_keys, parse_dotenv

# Format 2 holds the MLflow state only (database and artifacts); format 1 also held the
# image registry, hundreds of megabytes that CI now moves through a registry instead.
FORMAT = "2"
READS = ("1", "2")
# Settings a saved `.env` may not bring along unless trusted: which images run (the tag,
# reusing the state's images instead of building), and which host files are read or written.
STATE_CHOOSES = frozenset(
    {"GIT_SHA", "LAB_REMOTE_IMAGES", "LAB_MIRROR", "LAB_BUILD_CACHE", "STATE_FILE",
     "PIP_CA_FILE", "COMPOSE_PROJECT_NAME"}
)  # fmt: skip
MANIFEST_KEYS = ("format", "project", "s3_backend", "volumes", "git_sha", "saved_at")


def volumes(backend: str, fmt: str = FORMAT) -> list[str]:
    """The named volumes a state holds, in the order they are saved: the tracking
    server's database and artifact store. The images are rebuilt or pulled by make up."""
    return ["postgres-data", f"{backend}-data", *(["registry-data"] if fmt == "1" else [])]


def manifest_text(project: str, backend: str, git_sha: str, saved_at: str | None = None) -> str:
    fields = {
        "format": FORMAT,
        "project": project,
        "s3_backend": backend,
        "volumes": " ".join(volumes(backend)),
        "git_sha": git_sha,
        "saved_at": saved_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return "".join(f"{k}={v}\n" for k, v in fields.items())


def parse_manifest(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in MANIFEST_KEYS and key not in out:
            out[key] = value.strip()
    return out


@dataclass(frozen=True)
class Manifest:
    backend: str
    volumes: list[str]
    git_sha: str
    saved_at: str


def check_manifest(fields: dict[str, str], source: str, s3_from_env: str) -> Manifest:
    """Refuse a state this lab cannot restore exactly, naming why."""
    fmt = fields.get("format", "none")
    if fmt not in READS:
        raise LabError(
            f"{source} has state format {fmt!r}; this lab reads formats {', '.join(READS)}"
        )
    backend = fields.get("s3_backend", "")
    if backend not in S3_BACKENDS:
        raise LabError(f"{source} names an unknown S3 backend {backend!r}")
    if s3_from_env and s3_from_env != backend:
        raise LabError(
            f"this state was saved with S3_BACKEND={backend}, but S3_BACKEND={s3_from_env} "
            f"here: unset it or set S3_BACKEND={backend}"
        )
    vols = fields.get("volumes", "").split()
    if vols != volumes(backend, fmt):
        raise LabError(
            f"{source} lists volumes {vols}, but a format {fmt} state with "
            f"S3_BACKEND={backend} has {volumes(backend, fmt)}: not a state this lab wrote"
        )
    return Manifest(backend, vols, fields.get("git_sha", "?"), fields.get("saved_at", "?"))


def meta_archive(manifest: str, env: bytes) -> bytes:
    """A tar of meta/manifest and meta/env, to stream into the container that packs the state."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (
            ("meta", None, 0o700),
            ("meta/manifest", manifest.encode(), 0o600),
            ("meta/env", env, 0o600),
        ):
            info = tarfile.TarInfo(name)
            info.mtime = int(time.time())
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_meta(path: Path) -> tuple[dict[str, str], bytes]:
    """The manifest and the saved .env of a state file, both checked to be plain files."""
    if not path.is_file():
        raise LabError(
            f"no lab state at {path} (make state-save writes one; STATE_FILE=path names another)"
        )
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if member.name in ("meta/manifest", "meta/env"):
                    if not member.isfile():
                        raise LabError(
                            f"{path}: {member.name} is not a regular file (a link?): refusing it"
                        )
                    f = tar.extractfile(member)
                    found[member.name] = f.read() if f else b""
                if len(found) == 2:
                    break
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise LabError(f"{path} is not a lab state ({exc}; make state-save writes one)") from exc
    if len(found) != 2:
        raise LabError(
            f"{path} is not a lab state (no meta/manifest and meta/env inside; "
            "make state-save writes one)"
        )
    return parse_manifest(found["meta/manifest"].decode(errors="replace")), found["meta/env"]


def check_member(member: tarfile.TarInfo, allowed_tops: set[str], source: Path) -> str:
    """The top folder of an archive member that may be restored, or a LabError: only
    folders and regular files, under meta/ or one of the lab's volumes, no `..`."""
    name = member.name[2:] if member.name.startswith("./") else member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise LabError(f"{source}: {member.name!r} points outside the lab: nothing was restored")
    if parts[0] not in allowed_tops:
        raise LabError(
            f"{source}: {member.name!r} is not part of a lab state (expected meta/ and "
            f"{', '.join(sorted(allowed_tops - {'meta', ''}))}): nothing was restored"
        )
    if not (member.isfile() or member.isdir()):
        raise LabError(
            f"{source}: {member.name!r} is a link or a device, not a file or a folder: "
            "nothing was restored"
        )
    return parts[0]


def check_saved_env(saved: bytes, example_text: str, source: str, trust_images: bool) -> None:
    """A saved `.env` must hold only the documented lab settings, and name no image of
    its own: image variables in it would choose what this machine runs."""
    try:
        text = saved.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabError(f"{source}: meta/env is not text: nothing was restored") from exc
    env = parse_dotenv(text)
    check_dotenv(env, documented_keys(example_text), name=f"{source}: meta/env")
    chosen = sorted(
        k for k, v in env.values.items() if v and (k.endswith("_IMAGE") or k in STATE_CHOOSES)
    )
    if chosen and not trust_images:
        raise LabError(
            f"{source}: its .env chooses images, tags or files ({', '.join(chosen)}), which "
            "would run or be written here: restore only with TRUST_STATE_IMAGES=1 if you "
            "trust where the state came from"
        )


def verify_archive(path: Path, vols: list[str]) -> None:
    """Read the whole archive before anything is replaced: a truncated download, a damaged
    file, or a member that is not a plain file or folder of the expected volumes is
    refused while the lab's volumes and .env are still untouched."""
    seen: set[str] = set()
    allowed = {"meta", "", *vols}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                seen.add(check_member(member, allowed, path))
            # tar stops at its end marker; read on to the gzip trailer, whose checksum
            # and length are what catch a file cut short.
            while tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise LabError(
            f"{path} is truncated or damaged ({exc}): nothing was restored; "
            "download or save it again"
        ) from exc
    missing = [v for v in vols if v not in seen]
    if missing:
        raise LabError(f"{path} lacks the data of {', '.join(missing)}: nothing was restored")
