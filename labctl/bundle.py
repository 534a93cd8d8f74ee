"""The classroom kit: everything a docker-mode lab downloads, in one file (`make bundle`),
loaded on a machine without a network (`make bundle-load`); and `make mirror`, a
pull-through cache of Docker Hub for a room that has a slow network rather than none.

A bundle is an uncompressed tar, in this order:

    manifest.json      format, git sha, architecture, the images, the wheels' platform
    images.tar         one `docker save` of every image the lab runs (shared layers once)
    wheelhouse/*.whl   the dev venv's wheels: make venv installs from them, offline
    state/<file>       optional: a lab state (make state-save), as it was saved
    checksums.json     size and sha256 of every member above, computed while writing

The manifest comes first, so a bundle for another commit or architecture is refused
before gigabytes are read; the whole file is then checked against checksums.json before
anything is loaded, so a truncated copy changes nothing. See docs/instructor.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from labctl import images, log, state
from labctl.errors import CommandFailed, LabError
from labctl.runner import Runner
from labctl.settings import BUNDLE_IMAGES, Settings

KIND = "mlops-lab-bundle"
FORMAT = 1
ARCHES = ("amd64", "arm64")
# The S3 stores' image variables: a bundle holds the one S3_BACKEND names.
STORE_IMAGES = {"minio": "MINIO_IMAGE", "seaweedfs": "SEAWEEDFS_IMAGE"}
# Where bundle-load puts what it unpacks (not .lab/, which make clean deletes).
BUNDLE_DIR = Path(".bundle")
MANIFEST, CHECKSUMS, IMAGES_TAR = "manifest.json", "checksums.json", "images.tar"
WHEEL = re.compile(r"^wheelhouse/([A-Za-z0-9_.+-]+\.whl)$")
STATE = re.compile(r"^state/([A-Za-z0-9_+-][A-Za-z0-9_.+-]*)$")
SMALL_MEMBER = 1 << 20  # manifest.json and checksums.json are a few KB
CHUNK = 1 << 20
MIRROR_CONTAINER = "mlops-lab-mirror"
DOCKER_HUB_URL = "https://registry-1.docker.io"


def default_file(arch: str) -> str:
    return f"mlops-lab-bundle-{arch}.tar"


def resolve(settings: Settings, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else settings.root / path


def host_arch() -> str:
    """This machine's architecture in Docker's words (for the default file name)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def engine_arch(runner: Runner) -> str | None:
    """The architecture of the images the Docker engine runs (amd64, arm64), or None when
    no engine answers."""
    r = runner.run(
        ["docker", "version", "--format", "{{.Server.Arch}}"], check=False, capture=True, quiet=True
    )
    arch = r.stdout.strip()
    return arch if r.returncode == 0 and arch else None


def choose_arch(requested: str, engine: str) -> str:
    arch = requested.strip() or engine
    if arch not in ARCHES:
        raise LabError(f"BUNDLE_ARCH must be amd64 or arm64 (got {arch!r})")
    if arch != engine:
        machine = "an Apple silicon Mac or an arm64 Linux" if arch == "arm64" else "a PC"
        raise LabError(
            f"BUNDLE_ARCH={arch}, but this Docker engine runs {engine} images: make the "
            f"{arch} bundle on {machine}. Pulled or built here, {arch} images would replace "
            "this engine's own images of the same names"
        )
    return arch


def lab_upstream(settings: Settings) -> dict[str, str]:
    """Variable -> pinned upstream image, for every upstream image this lab runs: all of
    compose/compose.yaml's but the S3 store S3_BACKEND does not name."""
    if not settings.images:
        raise LabError("compose/compose.yaml names no upstream images: is this the lab's folder?")
    others = {var for backend, var in STORE_IMAGES.items() if backend != settings.s3_backend}
    return {var: ref for var, ref in sorted(settings.images.items()) if var not in others}


def check_arch(runner: Runner, ref: str, arch: str) -> None:
    r = runner.run(
        ["docker", "image", "inspect", "--format", "{{.Architecture}}", ref],
        check=False,
        capture=True,
        quiet=True,
    )
    found = r.stdout.strip()
    if r.returncode != 0 or found != arch:
        raise LabError(
            f"{ref} is a {found or 'missing'} image, and the bundle is for {arch}: "
            "nothing was written"
        )


class Hashing:
    """A file wrapper that hashes and counts every byte read or written through it."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.sha256 = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha256.update(data)
        self.count += len(data)
        return data

    def write(self, data) -> int:
        self.sha256.update(data)
        self.count += len(data)
        return self.f.write(data)

    def tell(self) -> int:
        return self.count


def _add(tar: tarfile.TarFile, arcname: str, f: IO[bytes], size: int, sums: dict) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    hashing = Hashing(f)
    tar.addfile(info, hashing)
    sums[arcname] = {"size": hashing.count, "sha256": hashing.sha256.hexdigest()}


def write_bundle(path: Path, manifest: dict, members: list[tuple[str, Path]]) -> str:
    """Write the bundle tar at `path`, each member hashed as it is written; returns the
    sha256 of the whole file."""
    sums: dict[str, dict] = {}
    with open(path, "wb") as raw:
        out = Hashing(raw)
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            _add(tar, MANIFEST, io.BytesIO(data), len(data), sums)
            for arcname, member in members:
                with open(member, "rb") as f:
                    _add(tar, arcname, f, member.stat().st_size, sums)
            data = json.dumps(sums, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(CHECKSUMS)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return out.sha256.hexdigest()


def wheel_platform(runner: Runner, python: str) -> dict[str, str]:
    """Python version, OS and machine the wheels are downloaded for (the venv's Python)."""
    code = (
        "import platform, sys; "
        "print(sys.version_info[0], sys.version_info[1], sys.platform, platform.machine())"
    )
    r = runner.run([python, "-c", code], capture=True)
    major, minor, os_name, machine = r.stdout.split()
    return {"python": f"{major}.{minor}", "os": os_name, "machine": machine}


def this_platform() -> dict[str, str]:
    """The same for the Python running labctl, the one `make venv` builds the venv with."""
    v = sys.version_info
    return {"python": f"{v[0]}.{v[1]}", "os": sys.platform, "machine": platform.machine()}


# ------------------------------------------------------------------------ make bundle
def create(settings: Settings, runner: Runner, name: str, arch: str, state_name: str) -> Path:
    """Write the bundle; print its size and sha256."""
    from labctl.docker import BUILT, DockerBackend, reusable_tag

    engine = engine_arch(runner)
    if engine is None:
        raise LabError(
            "make bundle needs a Docker engine and none answers (is Docker running? try: "
            "docker info)"
        )
    arch = choose_arch(arch, engine)
    sha = settings.get("GIT_SHA")
    if not reusable_tag(sha):
        raise LabError(
            f"GIT_SHA={sha}: a bundle holds one commit's images, and students need that "
            "commit checked out to use them: commit your changes (or tag the workshop's "
            "commit) and run make bundle on the clean checkout"
        )
    file = resolve(settings, name or default_file(arch))
    state_file = resolve(settings, state_name) if state_name else None
    if state_file is not None:
        state.read_meta(state_file)  # a lab state, or a message saying what it is not
        if not STATE.match(f"state/{state_file.name}"):
            raise LabError(f"BUNDLE_STATE: rename {state_file.name} to letters, digits, .-_")
    python = settings.root / ".venv" / "bin" / "python"
    if not python.exists():
        raise LabError("make bundle downloads the wheels with the venv's pip: run make venv")

    upstream: list[dict[str, str]] = []
    for var, ref in lab_upstream(settings).items():
        held = settings.get(var) or ref  # the name this engine knows it by
        if not images.has_image(runner, held):
            log.info(f"pulling {held} ({var}) for linux/{arch}")
            try:
                runner.run(["docker", "pull", "--quiet", "--platform", f"linux/{arch}", held])
            except CommandFailed as exc:
                raise LabError(
                    f"{held} ({var}) could not be pulled (see above): make bundle needs the "
                    f"network, or {var} naming an image this engine holds"
                ) from exc
        check_arch(runner, held, arch)
        # A loaded image keeps its tags, not the digest it was pulled by: a digest-pinned
        # image travels under a tag of its own, which bundle-load makes the lab use.
        saved = images.bundle_name(ref) if "@" in ref else held
        if saved != held:
            runner.run(["docker", "tag", held, saved])
        upstream.append({"var": var, "pinned": ref, "saved_as": saved})

    backend = DockerBackend(settings, runner)
    backend.ensure_env()
    backend.start_registry()
    backend.provide_images()
    built: list[dict[str, str]] = []
    for repo in BUILT.values():
        ref = backend.local_ref(repo, sha)
        if not backend.engine_has(repo, sha):  # in the local registry only
            runner.run(["docker", "pull", "--quiet", ref], capture=True)
        check_arch(runner, ref, arch)
        built.append({"repo": repo, "ref": ref})

    parts = file.with_name(f".{file.name}.parts")
    partial = file.with_name(f"{file.name}.partial")
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    try:
        images_tar = parts / IMAGES_TAR
        names = [e["saved_as"] for e in upstream] + [e["ref"] for e in built]
        log.info(f"saving {len(names)} images with one docker save (shared layers once)")
        try:
            runner.run(["docker", "save", "--output", str(images_tar), *names])
        except CommandFailed as exc:
            raise LabError(f"docker save failed (see above; room on {parts.parent}?)") from exc
        wheels = parts / "wheelhouse"
        log.info("downloading the dev venv's wheels (pip wheel, pinned by constraints.txt)")
        try:
            runner.run(
                [
                    str(python), "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
                    "-r", "requirements-dev.in", "-c", "constraints.txt",
                    # make venv upgrades pip first: the wheelhouse must hold one.
                    "pip",
                ]
            )  # fmt: skip
        except CommandFailed as exc:
            raise LabError(
                "pip could not download the wheels (see above): nothing written"
            ) from exc
        wheel_files = [(f"wheelhouse/{w.name}", w) for w in sorted(wheels.glob("*.whl"))]
        if not wheel_files or not all(WHEEL.match(a) for a, _ in wheel_files):
            raise LabError(f"pip wrote no wheels, or oddly named ones, to {wheels}")
        members = [(IMAGES_TAR, images_tar), *wheel_files]
        if state_file is not None:
            members.append((f"state/{state_file.name}", state_file))
        manifest = {
            "kind": KIND,
            "format": FORMAT,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_sha": sha,
            "arch": arch,
            "s3_backend": settings.s3_backend,
            "upstream": upstream,
            "built": built,
            "wheels": wheel_platform(runner, str(python)),
            "state": state_file.name if state_file else None,
        }
        log.info(f"writing {file}")
        digest = write_bundle(partial, manifest, members)
        partial.replace(file)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
        partial.unlink(missing_ok=True)
    size = file.stat().st_size / 1e6
    log.good(f"bundle written: {file}")
    print(f"  size:   {size:,.1f} MB")
    print(f"  sha256: {digest}")
    w = manifest["wheels"]
    print(
        f"  {len(upstream)} upstream and {len(built)} built images for linux/{arch}, "
        f"{len(wheel_files)} wheels for Python {w['python']} on {w['os']} {w['machine']}"
        f"{', a lab state' if state_file else ''}"
    )
    print(f"  students: make bundle-load BUNDLE=path/to/{file.name} (it prints the sha256 too)")
    return file


# ------------------------------------------------------------------- make bundle-load
def _small(tar: tarfile.TarFile, member: tarfile.TarInfo, file: Path) -> dict:
    if not member.isfile() or member.size > SMALL_MEMBER:
        raise LabError(f"{file}: {member.name} is not a small regular file: nothing was loaded")
    f = tar.extractfile(member)
    try:
        data = json.loads(f.read().decode("utf-8")) if f else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabError(f"{file}: {member.name} is damaged: nothing was loaded") from exc
    if not isinstance(data, dict):
        raise LabError(f"{file}: {member.name} is damaged: nothing was loaded")
    return data


def _damaged(file: Path, what: str) -> LabError:
    return LabError(
        f"{file} is truncated or damaged ({what}): nothing was loaded; copy it again and "
        "compare its sha256 with the instructor's"
    )


def read_manifest(file: Path) -> dict:
    """The manifest, the bundle's first member, checked to be one this lab reads."""
    if not file.is_file():
        raise LabError(
            f"no bundle at {file}: make bundle-load BUNDLE=path/to/mlops-lab-bundle-<arch>.tar"
        )
    try:
        with tarfile.open(file, mode="r|") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise LabError(f"{file} is not a classroom bundle (make bundle writes one)")
            m = _small(tar, first, file)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise LabError(f"{file} is not a classroom bundle, or is damaged ({exc})") from exc
    if m.get("kind") != KIND:
        raise LabError(f"{file} is not a classroom bundle (make bundle writes one)")
    if m.get("format") != FORMAT:
        raise LabError(
            f"{file} is a bundle of format {m.get('format')!r}; this lab reads format {FORMAT}: "
            "make the bundle with the workshop's checkout"
        )
    for key in ("git_sha", "arch", "s3_backend"):
        if not isinstance(m.get(key), str):
            raise _damaged(file, f"the manifest has no {key}")
    for key in ("upstream", "built"):
        if not isinstance(m.get(key), list) or not all(isinstance(e, dict) for e in m[key]):
            raise _damaged(file, f"the manifest has no {key} list")
    return m


def verify(file: Path) -> tuple[str, list[str]]:
    """Read the whole bundle and check every member against checksums.json: only the
    expected names, regular files, every size and sha256. Returns (the file's sha256, the
    member names). Raises before anything is loaded."""
    actual: dict[str, dict] = {}
    sums: dict | None = None
    try:
        with open(file, "rb") as raw:
            reader = Hashing(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    name = member.name
                    if sums is not None:
                        raise _damaged(file, f"{name} after {CHECKSUMS}")
                    if name == CHECKSUMS:
                        sums = _small(tar, member, file)
                        continue
                    allowed = name in (MANIFEST, IMAGES_TAR) or WHEEL.match(name)
                    if not (allowed or STATE.match(name)) or not member.isfile():
                        raise LabError(
                            f"{file}: unexpected member {name!r} (only files of a classroom "
                            "bundle may be in it): nothing was loaded"
                        )
                    if name in actual:
                        raise LabError(f"{file}: {name} is in it twice: nothing was loaded")
                    h, count, f = hashlib.sha256(), 0, tar.extractfile(member)
                    while f and (chunk := f.read(CHUNK)):
                        h.update(chunk)
                        count += len(chunk)
                    actual[name] = {"size": count, "sha256": h.hexdigest()}
            while reader.read(CHUNK):  # the end padding, for the whole file's sha256
                pass
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _damaged(file, str(exc)) from exc
    if sums is None:
        raise _damaged(file, f"no {CHECKSUMS} at its end")
    if actual != sums:
        wrong = sorted(n for n in set(actual) | set(sums) if actual.get(n) != sums.get(n))
        raise _damaged(file, f"{', '.join(wrong[:3])}: not as checksums.json says")
    if sum(1 for n in actual if STATE.match(n)) > 1:
        raise LabError(f"{file} holds more than one lab state: nothing was loaded")
    return reader.sha256.hexdigest(), sorted(actual)


def check_fit(m: dict, file: Path, settings: Settings, engine: str | None) -> None:
    """Refuse, before loading anything, a bundle whose images this lab would not run."""
    sha = settings.get("GIT_SHA")
    if m["git_sha"] != sha:
        raise LabError(
            f"{file} holds the images of commit {m['git_sha']}, and this checkout is {sha}: "
            f"check out the workshop's commit (git switch --detach {m['git_sha']}, with your "
            "changes committed or stashed), or ask for a bundle of this one. Nothing was loaded"
        )
    if engine is None:
        return  # only the wheels will be used
    if m["arch"] != engine:
        raise LabError(
            f"{file} holds {m['arch']} images and this Docker engine runs {engine}: ask for "
            f"the {engine} bundle (mlops-lab-bundle-{engine}.tar). Nothing was loaded"
        )
    from labctl.docker import BUILT

    missing = sorted(set(BUILT.values()) - {e.get("repo") for e in m["built"]})
    if missing:
        raise _damaged(file, f"no built image for {', '.join(missing)}")
    held = {e.get("var"): e.get("pinned") for e in m["upstream"]}
    for var, ref in lab_upstream(settings).items():
        if held.get(var) == ref:
            continue
        if var in STORE_IMAGES.values() and m["s3_backend"] != settings.s3_backend:
            raise LabError(
                f"{file} holds the {m['s3_backend']} S3 store and this lab uses "
                f"S3_BACKEND={settings.s3_backend}: set S3_BACKEND={m['s3_backend']} in .env "
                "(a lab keeps the store it started with: make clean first if it ran). "
                "Nothing was loaded"
            )
        raise LabError(
            f"{file} does not hold {ref} ({var}), which this lab runs"
            + (f"; it holds {held[var]}" if held.get(var) else "")
            + f": run with the {var} (and LAB_MIRROR) the bundle was made with. Nothing was loaded"
        )


def _pipe(argv: list[str], source: IO[bytes], runner: Runner) -> None:
    """Stream `source` into a command's stdin (a multi-GB member is never held in memory)."""
    try:
        proc = subprocess.Popen(argv, cwd=runner.cwd, env=runner.env, stdin=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise CommandFailed(argv, 127) from exc
    assert proc.stdin is not None
    try:
        shutil.copyfileobj(source, proc.stdin, CHUNK)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    if proc.wait() != 0:
        raise CommandFailed(argv, proc.returncode)


def load(settings: Settings, runner: Runner, name: str) -> None:
    """Check a bundle from end to end, then load its images, unpack its wheels (and its
    lab state) into .bundle/."""
    from labctl.docker import DockerBackend

    engine = engine_arch(runner)
    file = resolve(settings, name or default_file(engine or host_arch()))
    m = read_manifest(file)
    check_fit(m, file, settings, engine)
    wheels_fit = m.get("wheels") == this_platform()
    log.info(f"checking {file} from end to end before loading anything")
    digest, names = verify(file)
    log.good(f"{file}: every member matches its checksum (sha256 of the file: {digest})")

    out = settings.root / BUNDLE_DIR
    out.mkdir(exist_ok=True)
    new_wheels = out / "wheelhouse.partial"
    shutil.rmtree(new_wheels, ignore_errors=True)
    if wheels_fit:
        new_wheels.mkdir()
    try:
        state_path = _unpack(file, m, runner, engine, new_wheels if wheels_fit else None, out)
    except CommandFailed as exc:
        shutil.rmtree(new_wheels, ignore_errors=True)
        raise LabError(
            "docker load failed (see above; room on Docker's disk?): fix it and run make "
            "bundle-load again"
        ) from exc
    except BaseException:
        shutil.rmtree(new_wheels, ignore_errors=True)
        raise
    if engine is None:
        log.warn(
            "no Docker engine answers: the images were not loaded (local mode needs only the "
            "wheels); start Docker and run make bundle-load again for docker mode"
        )
    else:
        _name_images(m, settings, runner, DockerBackend(settings, runner))
    if wheels_fit:
        old = out / "wheelhouse"
        shutil.rmtree(old, ignore_errors=True)
        new_wheels.replace(old)
        count = sum(1 for n in names if WHEEL.match(n))
        log.info(f"{count} wheels in {old}: make venv installs from them, offline")
    else:
        w = m.get("wheels") or {}
        here = this_platform()
        log.warn(
            f"the bundle's wheels are for Python {w.get('python')} on {w.get('os')} "
            f"{w.get('machine')}, and this machine runs Python {here['python']} on "
            f"{here['os']} {here['machine']}: not installed, make venv will download from "
            "PyPI (ask for a bundle made on a machine like this one)"
        )
    (out / MANIFEST).write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    log.good(f"loaded {file.name} (commit {m['git_sha']}, {m['arch']})")
    if state_path is not None:
        rel = state_path.relative_to(settings.root)
        print(
            f"  it holds a lab state: make state-restore STATE_FILE={rel} (FORCE=1 replaces "
            "this lab's data and .env), then make up"
        )
    print("  next: make up, then make test; neither needs the network")


def _unpack(
    file: Path, m: dict, runner: Runner, engine: str | None, wheels: Path | None, out: Path
) -> Path | None:
    """One pass over the checked bundle: images to docker load, wheels into `wheels`, the
    state into .bundle/state/. Returns the state's path, if the bundle holds one."""
    state_path: Path | None = None
    with tarfile.open(file, mode="r|") as tar:
        for member in tar:
            source = tar.extractfile(member)
            if source is None:
                continue
            if member.name == IMAGES_TAR and engine is not None:
                log.info(f"docker load: {len(m['upstream']) + len(m['built'])} images")
                _pipe(["docker", "load", "--quiet"], source, runner)
            elif (wheel := WHEEL.match(member.name)) and wheels is not None:
                with open(wheels / wheel.group(1), "wb") as f:
                    shutil.copyfileobj(source, f, CHUNK)
            elif st := STATE.match(member.name):
                (out / "state").mkdir(exist_ok=True)
                state_path = out / "state" / st.group(1)
                with open(state_path, "wb") as f:
                    shutil.copyfileobj(source, f, CHUNK)
    return state_path


def _name_images(m: dict, settings: Settings, runner: Runner, backend) -> None:
    """After docker load: the built images under this lab's registry name, and the
    digest-pinned upstream images recorded in .bundle/images.json for the lab to run."""
    sha = settings.get("GIT_SHA")
    for e in m["built"]:
        ref, local = str(e.get("ref")), backend.local_ref(str(e.get("repo")), sha)
        if not images.has_image(runner, ref):
            raise LabError(f"docker load did not give this engine {ref}: load the bundle again")
        if ref != local:  # another REGISTRY_PORT here than where the bundle was made
            runner.run(["docker", "tag", ref, local])
    pinned: dict[str, str] = {}
    lab = lab_upstream(settings)
    for e in m["upstream"]:
        var, ref = str(e.get("var")), str(e.get("pinned"))
        name = images.bundle_name(ref) if "@" in ref else ref
        if var not in lab:
            continue  # an image this lab does not run (another S3 store)
        if not images.has_image(runner, name):
            raise LabError(f"docker load did not give this engine {name}: load the bundle again")
        if name != ref:
            pinned[var] = ref
    path = settings.root / BUNDLE_IMAGES
    path.write_text(json.dumps(pinned, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if pinned:
        log.info(
            f"{len(pinned)} images pinned by digest are held under their bundle names "
            f"(mlops-lab-bundle/...); the lab runs them by those names ({BUNDLE_IMAGES})"
        )


# ------------------------------------------------------------------------ make mirror
def mirror(settings: Settings, runner: Runner, port_text: str) -> None:
    """Start (or restart) a pull-through cache of Docker Hub on every address of this
    machine, and pull the lab's Docker Hub images through it once."""
    if settings.get("LAB_MIRROR"):
        raise LabError(
            "LAB_MIRROR is set here: make mirror runs on the instructor's machine, which pulls "
            "from Docker Hub itself; unset LAB_MIRROR"
        )
    port = port_text.strip() or "5000"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise LabError(f"MIRROR_PORT must be a port number (got {port_text!r})")
    if engine_arch(runner) is None:
        raise LabError("make mirror needs a Docker engine and none answers (try: docker info)")
    if runner.ok(["docker", "container", "inspect", MIRROR_CONTAINER]):
        log.info(f"starting the existing {MIRROR_CONTAINER} (on the port it was created with)")
        runner.run(["docker", "start", MIRROR_CONTAINER], capture=True)
    else:
        log.info(f"starting {MIRROR_CONTAINER}: a pull-through cache of Docker Hub on port {port}")
        runner.run(
            [
                "docker", "run", "--detach", "--name", MIRROR_CONTAINER,
                "--restart", "unless-stopped", "--memory", "256m",
                "--security-opt", "no-new-privileges:true",
                # Every address: the room's laptops pull through it (docs/instructor.md).
                "--publish", f"{port}:5000",
                "--volume", f"{MIRROR_CONTAINER}:/var/lib/registry",
                "--env", f"REGISTRY_PROXY_REMOTEURL={DOCKER_HUB_URL}",
                settings.images["REGISTRY_IMAGE"],
            ],
            capture=True,
        )  # fmt: skip
    local = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _answers(f"http://{local}/v2/"):
        if time.monotonic() > deadline:
            raise LabError(f"the mirror does not answer on {local}: docker logs {MIRROR_CONTAINER}")
        time.sleep(0.5)
    warmed = 0
    for var, ref in sorted(settings.images.items()):
        through = images.through_mirror(ref, local)
        if through is None:
            log.info(f"{var}: {ref} is not on Docker Hub: students pull it directly")
            continue
        log.info(f"filling the cache: {ref}")
        if runner.ok(["docker", "pull", "--quiet", through]):
            warmed += 1
        else:
            log.warn(f"{through} could not be pulled through the mirror (see docker logs)")
    log.good(f"the mirror serves on port {port} of every address here ({warmed} images cached)")
    print(
        f"  students: LAB_MIRROR=<this machine's address>:{port} in .env, and that address in\n"
        '  Docker\'s "insecure-registries" (docs/instructor.md); stop it: '
        f"docker stop {MIRROR_CONTAINER}"
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (http on loopback)
            return True
    except urllib.error.HTTPError:
        return True  # 401 and the like: a registry answered
    except (OSError, ValueError):
        return False
