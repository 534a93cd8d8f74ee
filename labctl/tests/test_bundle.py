"""The classroom kit (make bundle, make bundle-load, make mirror) and LAB_MIRROR, against a
fake `docker` and a fake venv Python on PATH: no engine, no network."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

from labctl import bundle, images
from labctl.docker import BUILT, DockerBackend
from labctl.errors import LabError
from labctl.runner import Runner
from labctl.settings import load

SHA = "abc123def456"
DIGEST = "sha256:" + "1" * 64

# A Docker CLI with an engine in a JSON file: the images it holds (ref -> architecture),
# the ones it could pull, and every call, for the tests to read.
FAKE_DOCKER = """#!{python} -S
import json, os, sys
path = os.path.join(os.environ["FAKE_DOCKER"], "engine.json")
with open(path) as f:
    engine = json.load(f)
args = sys.argv[1:]
engine["calls"].append(args)
code = 0
held = engine["images"]
if not engine["arch"]:
    code = 1
elif args[0] == "version":
    print(engine["arch"])
elif args[:2] == ["image", "inspect"]:
    if args[-1] in held:
        print(held[args[-1]] if "Architecture" in args[3] else "sha256:0")
    else:
        code = 1
elif args[0] == "pull":
    if args[-1] in engine["pullable"]:
        held[args[-1]] = engine["arch"]
    else:
        code = 1
elif args[0] == "tag":
    held[args[2]] = held[args[1]]
elif args[0] == "save":
    out = args[args.index("--output") + 1]
    with open(out, "w") as f:
        json.dump({{ref: held[ref] for ref in args[3:]}}, f)
elif args[0] == "load":
    engine["loaded"] = sys.stdin.read()
    if engine.get("load_fails"):
        code = 1
    else:
        held.update(json.loads(engine["loaded"]))
elif args[:2] == ["container", "inspect"]:
    code = 0 if engine.get("mirror") else 1
with open(path, "w") as f:
    json.dump(engine, f)
sys.exit(code)
"""

# The venv's Python: `-m pip wheel ...` writes two wheels, anything else is the real one.
FAKE_PYTHON = """#!{python} -S
import os, sys
if sys.argv[1:3] == ["-m", "pip"]:
    folder = sys.argv[sys.argv.index("--wheel-dir") + 1]
    os.makedirs(folder, exist_ok=True)
    for name in ("pip-26.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(name.encode() * 100)
    with open(os.path.join(os.environ["FAKE_DOCKER"], "pip-args"), "w") as f:
        f.write(" ".join(sys.argv[1:]))
    sys.exit(0)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


class Engine:
    """The fake engine's state, read and written around the fake docker's runs."""

    def __init__(self, folder: Path):
        self.path = folder / "engine.json"

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, **changes) -> None:
        data = self.read() if self.path.exists() else {}
        data.update(changes)
        self.path.write_text(json.dumps(data))

    @property
    def calls(self) -> list[list[str]]:
        return self.read()["calls"]

    def ran(self, *words: str) -> bool:
        return any(c[: len(words)] == list(words) for c in self.calls)


@pytest.fixture
def engine(tmp_path, monkeypatch) -> Engine:
    folder = tmp_path / "fake"
    folder.mkdir()
    docker = folder / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    monkeypatch.setenv("FAKE_DOCKER", str(folder))
    e = Engine(folder)
    e.write(arch="amd64", images={}, pullable=[], calls=[])
    return e


@pytest.fixture
def lab(lab_root, engine, monkeypatch):
    """A lab with the fake venv Python; `lab.settings(**env)` loads its settings."""
    venv = lab_root / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(FAKE_PYTHON.format(python=sys.executable))
    (venv / "python").chmod(0o755)
    # provide_images is the docker backend's (build or push this commit's images); here
    # the engine already holds them, as after make build.
    monkeypatch.setattr(DockerBackend, "provide_images", lambda self: None)

    class Lab:
        root = lab_root

        @staticmethod
        def settings(sha: str = SHA, **env: str):
            path = f"{engine.path.parent}{os.pathsep}{os.environ['PATH']}"
            environ = {"PATH": path, "FAKE_DOCKER": os.environ["FAKE_DOCKER"], **env}
            s = load(lab_root, environ, sha=sha)
            return s, Runner(lab_root, s.env)

    return Lab


def held_by_instructor(settings) -> dict[str, str]:
    """What the instructor's engine holds after make build: the five built images and
    the upstream images but the Postgres one (make bundle pulls that)."""
    backend = DockerBackend(settings, None)
    held = {backend.local_ref(repo, SHA): "amd64" for repo in BUILT.values()}
    held.update({ref: "amd64" for var, ref in settings.images.items() if var != "POSTGRES_IMAGE"})
    return held


def make_bundle(lab, engine, **env) -> Path:
    s, runner = lab.settings(**env)
    engine.write(images=held_by_instructor(s), pullable=[s.images["POSTGRES_IMAGE"]])
    return bundle.create(s, runner, "", "", env.get("BUNDLE_STATE", ""))


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()


def new_machine(engine: Engine, arch: str = "amd64") -> None:
    """The student's engine: nothing held, nothing pullable (no network)."""
    engine.write(arch=arch, images={}, pullable=[], calls=[])


# ------------------------------------------------------------------------ make bundle
def test_bundle_holds_every_image_the_wheels_and_checksums(lab, engine, capsys):
    path = make_bundle(lab, engine)
    assert path == lab.root / "mlops-lab-bundle-amd64.tar"
    names = [m.name for m in members(path)]
    assert names[0] == "manifest.json" and names[-1] == "checksums.json"
    assert names[1:-1] == [
        "images.tar",
        "wheelhouse/demo-1.0-py3-none-any.whl",
        "wheelhouse/pip-26.0-py3-none-any.whl",
    ]
    # Nothing left behind but the bundle.
    assert sorted(p.name for p in lab.root.iterdir() if "bundle" in p.name) == [path.name]

    manifest = json.loads(read_member(path, "manifest.json"))
    s, _ = lab.settings()
    assert (manifest["kind"], manifest["format"]) == ("mlops-lab-bundle", 1)
    assert (manifest["git_sha"], manifest["arch"], manifest["s3_backend"]) == (
        SHA,
        "amd64",
        "minio",
    )
    assert manifest["created"].endswith("Z")
    upstream = {e["var"]: e for e in manifest["upstream"]}
    # The S3 store S3_BACKEND names, not the other one.
    assert sorted(upstream) == sorted(set(s.images) - {"SEAWEEDFS_IMAGE"})
    pg = upstream["POSTGRES_IMAGE"]
    assert pg["pinned"] == s.images["POSTGRES_IMAGE"] and "@sha256:" in pg["pinned"]
    assert pg["saved_as"] == images.bundle_name(pg["pinned"])
    assert [e["repo"] for e in manifest["built"]] == list(BUILT.values())
    assert manifest["wheels"] == bundle.this_platform()

    # Every member's size and sha256, the manifest's too.
    sums = json.loads(read_member(path, "checksums.json"))
    assert sorted(sums) == sorted(names[:-1])
    for name in names[:-1]:
        data = read_member(path, name)
        assert sums[name] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    # One docker save of every image, each under the name it is saved as.
    saved = json.loads(read_member(path, "images.tar"))
    assert sorted(saved) == sorted(
        [e["saved_as"] for e in manifest["upstream"]] + [e["ref"] for e in manifest["built"]]
    )
    # Pulled only what the engine lacked, for the bundle's platform.
    pulls = [c for c in engine.calls if c[0] == "pull"]
    assert pulls == [["pull", "--quiet", "--platform", "linux/amd64", pg["pinned"]]]
    pip = (engine.path.parent / "pip-args").read_text()
    assert "wheel" in pip and "-r requirements-dev.in -c constraints.txt pip" in pip

    out = capsys.readouterr().out
    assert f"sha256: {hashlib.sha256(path.read_bytes()).hexdigest()}" in out
    assert "size:" in out and " MB" in out


def test_bundle_takes_local_stand_ins_as_they_are(lab, engine):
    """CI: the *_IMAGE variables name images built here, which no registry has."""
    stand_in = "mlops-lab-ci/postgres:15-bookworm"
    s, runner = lab.settings(POSTGRES_IMAGE=stand_in, S3_BACKEND="seaweedfs")
    engine.write(images={**held_by_instructor(s), stand_in: "amd64"})
    path = bundle.create(s, runner, "kit.tar", "amd64", "")
    manifest = json.loads(read_member(path, "manifest.json"))
    upstream = {e["var"]: e for e in manifest["upstream"]}
    assert upstream["POSTGRES_IMAGE"] == {
        "var": "POSTGRES_IMAGE",
        "pinned": stand_in,
        "saved_as": stand_in,
    }
    assert "SEAWEEDFS_IMAGE" in upstream and "MINIO_IMAGE" not in upstream
    assert not engine.ran("pull")


def test_bundle_includes_a_lab_state_as_it_is(lab, engine):
    saved = lab.root / "lab-state.tgz"
    with tarfile.open(saved, "w:gz") as tar:
        for name, data in (("meta/manifest", b"format=2\n"), ("meta/env", b"A=1\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = make_bundle(lab, engine, BUNDLE_STATE="lab-state.tgz")
    assert read_member(path, "state/lab-state.tgz") == saved.read_bytes()
    assert json.loads(read_member(path, "manifest.json"))["state"] == "lab-state.tgz"


@pytest.mark.parametrize(
    ("arch", "sha", "message"),
    [
        ("riscv64", SHA, "BUNDLE_ARCH must be amd64 or arm64"),
        ("arm64", SHA, "make the arm64 bundle on an Apple silicon Mac"),
        ("", f"{SHA}-dirty-0123456789", "commit your changes"),
        ("", "dev", "commit your changes"),
    ],
)
def test_bundle_refuses_before_writing_anything(lab, engine, arch, sha, message):
    s, runner = lab.settings(sha=sha)
    engine.write(images=held_by_instructor(s))
    with pytest.raises(LabError, match=message):
        bundle.create(s, runner, "", arch, "")
    assert not any("bundle" in p.name for p in lab.root.iterdir())
    assert not engine.ran("save") and not engine.ran("pull")


def test_bundle_refuses_an_image_of_another_architecture(lab, engine):
    s, runner = lab.settings()
    held = held_by_instructor(s)
    held[s.images["PROXY_IMAGE"]] = "arm64"
    engine.write(images=held, pullable=[s.images["POSTGRES_IMAGE"]])
    with pytest.raises(LabError, match="is a arm64 image, and the bundle is for amd64"):
        bundle.create(s, runner, "", "", "")
    assert not engine.ran("save")


# ------------------------------------------------------------------- make bundle-load
def test_bundle_load_loads_the_images_and_the_wheels(lab, engine, capsys):
    path = make_bundle(lab, engine)
    new_machine(engine)
    s, runner = lab.settings()
    bundle.load(s, runner, str(path))

    assert engine.read()["loaded"] == read_member(path, "images.tar").decode()
    wheels = sorted(p.name for p in (lab.root / ".bundle" / "wheelhouse").iterdir())
    assert wheels == ["demo-1.0-py3-none-any.whl", "pip-26.0-py3-none-any.whl"]
    # The digest-pinned images run by their bundle names; the built ones are this lab's.
    pinned = json.loads((lab.root / ".bundle" / "images.json").read_text())
    assert pinned["POSTGRES_IMAGE"] == s.images["POSTGRES_IMAGE"]
    after, _ = lab.settings()
    assert after.get("POSTGRES_IMAGE") == images.bundle_name(s.images["POSTGRES_IMAGE"])
    assert after.images == s.images
    held = engine.read()["images"]
    assert after.get("POSTGRES_IMAGE") in held
    assert all(DockerBackend(after, None).local_ref(r, SHA) in held for r in BUILT.values())
    assert not engine.ran("pull")
    assert "make up" in capsys.readouterr().out


def test_bundle_load_names_the_built_images_for_this_labs_registry(lab, engine):
    path = make_bundle(lab, engine)
    new_machine(engine)
    s, runner = lab.settings(REGISTRY_PORT="15100")
    bundle.load(s, runner, str(path))
    held = engine.read()["images"]
    assert f"127.0.0.1:15100/mlops-lab/serving:{SHA}" in held
    tags = [c[1:] for c in engine.calls if c[0] == "tag"]
    assert [
        f"127.0.0.1:5100/mlops-lab/serving:{SHA}",
        f"127.0.0.1:15100/mlops-lab/serving:{SHA}",
    ] in tags


def test_bundle_load_offers_the_state(lab, engine, capsys):
    saved = lab.root / "lab-state.tgz"
    with tarfile.open(saved, "w:gz") as tar:
        for name, data in (("meta/manifest", b"format=2\n"), ("meta/env", b"A=1\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = make_bundle(lab, engine, BUNDLE_STATE="lab-state.tgz")
    new_machine(engine)
    s, runner = lab.settings()
    bundle.load(s, runner, str(path))
    assert (lab.root / ".bundle" / "state" / "lab-state.tgz").read_bytes() == saved.read_bytes()
    assert "make state-restore STATE_FILE=.bundle/state/lab-state.tgz" in capsys.readouterr().out


def assert_nothing_loaded(lab, engine):
    assert not engine.ran("load") and not engine.ran("tag")
    assert not (lab.root / ".bundle" / "wheelhouse").exists()
    assert not (lab.root / ".bundle" / "images.json").exists()


@pytest.mark.parametrize("cut", ["half", "before checksums", "in checksums"])
def test_bundle_load_refuses_a_truncated_file(lab, engine, cut):
    path = make_bundle(lab, engine)
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        last = tar.getmember("checksums.json")
    keep = {
        "half": len(data) // 2,
        "before checksums": last.offset,  # every other member whole: the checksums missing
        "in checksums": last.offset_data + last.size // 2,
    }[cut]
    path.write_bytes(data[:keep])
    new_machine(engine)
    s, runner = lab.settings()
    with pytest.raises(LabError, match=r"truncated or damaged.*nothing was loaded"):
        bundle.load(s, runner, str(path))
    assert_nothing_loaded(lab, engine)


@pytest.mark.parametrize("member", ["images.tar", "wheelhouse/pip-26.0-py3-none-any.whl"])
def test_bundle_load_refuses_a_damaged_member(lab, engine, member):
    path = make_bundle(lab, engine)
    with tarfile.open(path) as tar:
        offset = tar.getmember(member).offset_data
    data = bytearray(path.read_bytes())
    data[offset + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    new_machine(engine)
    s, runner = lab.settings()
    with pytest.raises(LabError, match=f"{member}: not as checksums.json says"):
        bundle.load(s, runner, str(path))
    assert_nothing_loaded(lab, engine)


def rewrite(path: Path, extra: list[tuple[str, bytes]], folder: Path) -> None:
    """The bundle at `path` written again with `extra` members, checksums and all."""
    folder.mkdir()
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        kept = []
        for m in tar.getmembers()[1:-1]:
            (folder / m.name.replace("/", "_")).write_bytes(tar.extractfile(m).read())
            kept.append((m.name, folder / m.name.replace("/", "_")))
    for i, (name, data) in enumerate(extra):
        (folder / f"extra{i}").write_bytes(data)
        kept.append((name, folder / f"extra{i}"))
    bundle.write_bundle(path, manifest, kept)


@pytest.mark.parametrize(
    "name", ["../../.bashrc", "wheelhouse/../../x.whl", "state/a.tgz", "wheelhouse/x.txt"]
)
def test_bundle_load_refuses_a_member_it_does_not_know(lab, engine, tmp_path, name):
    path = make_bundle(lab, engine)
    # state/a.tgz is allowed once: twice is one too many.
    extra = [(name, b"x")] + ([("state/b.tgz", b"y")] if name.startswith("state/") else [])
    rewrite(path, extra, tmp_path / "parts")
    new_machine(engine)
    s, runner = lab.settings()
    with pytest.raises(LabError, match="nothing was loaded"):
        bundle.load(s, runner, str(path))
    assert_nothing_loaded(lab, engine)


def test_bundle_load_refuses_a_member_after_the_checksums(lab, engine):
    path = make_bundle(lab, engine)
    with tarfile.open(path, "a") as tar:
        tar.addfile(tarfile.TarInfo("images.tar"), io.BytesIO(b""))
    new_machine(engine)
    s, runner = lab.settings()
    with pytest.raises(LabError, match=r"images\.tar after checksums\.json"):
        bundle.load(s, runner, str(path))
    assert_nothing_loaded(lab, engine)


@pytest.mark.parametrize(
    ("machine", "settings", "message"),
    [
        ({"arch": "arm64"}, {}, "amd64 images and this Docker engine runs arm64"),
        ({}, {"sha": "fedcba987654"}, f"images of commit {SHA}, and this checkout is fedcba"),
        ({}, {"S3_BACKEND": "seaweedfs"}, r"holds the minio S3 store.*S3_BACKEND=minio"),
    ],
    ids=["another architecture", "another commit", "another S3 store"],
)
def test_bundle_load_refuses_a_bundle_this_lab_would_not_run(
    lab, engine, machine, settings, message
):
    path = make_bundle(lab, engine)
    new_machine(engine, **machine)
    s, runner = lab.settings(**settings)
    with pytest.raises(LabError, match=message):
        bundle.load(s, runner, str(path))
    assert_nothing_loaded(lab, engine)


def test_bundle_load_refuses_a_file_that_is_no_bundle(lab, engine):
    other = lab.root / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    s, runner = lab.settings()
    with pytest.raises(LabError, match="not a classroom bundle"):
        bundle.load(s, runner, str(other))
    with pytest.raises(LabError, match="no bundle at"):
        bundle.load(s, runner, "missing.tar")
    assert_nothing_loaded(lab, engine)


def test_wheels_for_another_platform_are_not_installed(lab, engine, monkeypatch, capsys):
    path = make_bundle(lab, engine)
    new_machine(engine)
    monkeypatch.setattr(
        bundle, "this_platform", lambda: {"python": "3.12", "os": "darwin", "machine": "arm64"}
    )
    s, runner = lab.settings()
    bundle.load(s, runner, str(path))
    assert engine.ran("load")  # the images are for this engine all the same
    assert not (lab.root / ".bundle" / "wheelhouse").exists()
    assert "not installed, make venv will download from PyPI" in capsys.readouterr().err


def test_without_docker_bundle_load_installs_the_wheels_only(lab, engine, capsys):
    path = make_bundle(lab, engine)
    new_machine(engine, arch="")  # no engine answers
    s, runner = lab.settings(S3_BACKEND="seaweedfs")  # images are not its concern
    bundle.load(s, runner, str(path))
    assert len(list((lab.root / ".bundle" / "wheelhouse").iterdir())) == 2
    assert not engine.ran("load") and not (lab.root / ".bundle" / "images.json").exists()
    assert "the images were not loaded" in capsys.readouterr().err


def test_a_failed_docker_load_is_an_error_and_installs_no_wheels(lab, engine):
    path = make_bundle(lab, engine)
    new_machine(engine)
    engine.write(load_fails=True)
    s, runner = lab.settings()
    with pytest.raises(LabError, match="docker load failed"):
        bundle.load(s, runner, str(path))
    assert not (lab.root / ".bundle" / "wheelhouse").exists()
    assert not (lab.root / ".bundle" / "wheelhouse.partial").exists()


def test_the_cli_runs_bundle_load(lab, engine, capsys):
    from labctl.cli import main

    s, _ = lab.settings()
    code = main(["bundle-load"], environ={**s.environ, "BUNDLE": "nowhere.tar"}, root=lab.root)
    assert code == 2
    assert "no bundle at" in capsys.readouterr().err


# ------------------------------------------------------------------ the loaded names
def test_a_loaded_name_is_used_only_for_the_image_it_stands_for(lab, engine):
    s, _ = lab.settings()
    pg = s.images["POSTGRES_IMAGE"]
    folder = lab.root / ".bundle"
    folder.mkdir()
    (folder / "images.json").write_text(json.dumps({"POSTGRES_IMAGE": pg}))
    assert lab.settings()[0].get("POSTGRES_IMAGE") == images.bundle_name(pg)
    # A checkout that pins another Postgres pulls that one.
    (folder / "images.json").write_text(json.dumps({"POSTGRES_IMAGE": f"postgres:14@{DIGEST}"}))
    assert lab.settings()[0].get("POSTGRES_IMAGE") == ""
    # A damaged file is ignored.
    (folder / "images.json").write_text("{not json")
    assert lab.settings()[0].get("POSTGRES_IMAGE") == ""


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        (f"postgres:15.14-bookworm@{DIGEST}", "postgres:15.14-bookworm-111111111111"),
        (f"quay.io/minio/minio:RELEASE.X@{DIGEST}", "quay.io/minio/minio:RELEASE.X-111111111111"),
        (f"10.0.0.9:5000/library/postgres@{DIGEST}", "10.0.0.9-5000/library/postgres:111111111111"),
    ],
)
def test_bundle_names(ref, name):
    assert images.bundle_name(ref) == f"mlops-lab-bundle/{name}"


# --------------------------------------------------------------------------- LAB_MIRROR
@pytest.mark.parametrize(
    ("ref", "through"),
    [
        (f"postgres:15@{DIGEST}", f"10.0.0.9:5000/library/postgres:15@{DIGEST}"),
        ("nginxinc/nginx-unprivileged:1.27", "10.0.0.9:5000/nginxinc/nginx-unprivileged:1.27"),
        ("docker.io/library/registry:2", "10.0.0.9:5000/library/registry:2"),
        ("docker.io/chrislusf/seaweedfs:4", "10.0.0.9:5000/chrislusf/seaweedfs:4"),
        ("quay.io/minio/minio:R", None),
        ("localhost:5000/x:1", None),
    ],
)
def test_through_mirror_rewrites_docker_hub_images_only(ref, through):
    assert images.through_mirror(ref, "10.0.0.9:5000") == through


def test_lab_mirror_sets_the_docker_hub_images_the_user_did_not_choose(settings_for):
    plain = settings_for()
    s = settings_for(LAB_MIRROR="10.0.0.9:5000", PROXY_IMAGE="mine/nginx:1")
    assert s.get("POSTGRES_IMAGE") == "10.0.0.9:5000/library/" + plain.images["POSTGRES_IMAGE"]
    assert s.get("PYTHON_IMAGE").startswith("10.0.0.9:5000/library/python:3.11")
    assert s.get("SEAWEEDFS_IMAGE").startswith("10.0.0.9:5000/chrislusf/seaweedfs:")
    assert s.get("PROXY_IMAGE") == "mine/nginx:1"  # chosen: kept
    assert s.get("MINIO_IMAGE") == ""  # quay.io: compose's default, straight
    assert s.images["MINIO_IMAGE"] == plain.images["MINIO_IMAGE"]
    assert s.images["POSTGRES_IMAGE"] == s.get("POSTGRES_IMAGE")
    assert plain.get("POSTGRES_IMAGE") == ""  # without a mirror compose's own default


@pytest.mark.parametrize("value", ["http://10.0.0.9:5000", "10.0.0.9", "host:5000/path", "a b:1"])
def test_lab_mirror_must_be_host_and_port(settings_for, value):
    with pytest.raises(LabError, match="LAB_MIRROR must be host:port"):
        settings_for(LAB_MIRROR=value)


def test_every_upstream_image_of_the_compose_file_is_read(lab_root):
    found = images.upstream_defaults((lab_root / "compose" / "compose.yaml").read_text())
    assert set(bundle.STORE_IMAGES.values()) <= set(found)
    assert {"PYTHON_IMAGE", "POSTGRES_IMAGE", "REGISTRY_IMAGE", "PROXY_IMAGE"} <= set(found)
    assert all("@sha256:" in ref for ref in found.values())
    with pytest.raises(ValueError, match="several"):
        images.upstream_defaults("a: ${X_IMAGE:-a:1}\nb: ${X_IMAGE:-a:2}\n")


# ------------------------------------------------------------------------ make mirror
def test_mirror_starts_a_pull_through_cache_and_fills_it(lab, engine, monkeypatch):
    monkeypatch.setattr(bundle, "_answers", lambda url: url == "http://127.0.0.1:5999/v2/")
    s, runner = lab.settings()
    engine.write(
        pullable=[images.through_mirror(ref, "127.0.0.1:5999") for ref in s.images.values()]
    )
    bundle.mirror(s, runner, "5999")
    [run] = [c for c in engine.calls if c[0] == "run"]
    assert "5999:5000" in run and "REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io" in run
    assert run[-1] == s.images["REGISTRY_IMAGE"]
    pulled = [c[-1] for c in engine.calls if c[0] == "pull"]
    assert sorted(pulled) == sorted(
        images.through_mirror(ref, "127.0.0.1:5999")
        for var, ref in s.images.items()
        if var != "MINIO_IMAGE"  # quay.io: not through a Docker Hub cache
    )


def test_mirror_restarts_the_existing_container(lab, engine, monkeypatch):
    monkeypatch.setattr(bundle, "_answers", lambda url: True)
    engine.write(mirror=True)
    s, runner = lab.settings()
    bundle.mirror(s, runner, "")
    assert engine.ran("start", "mlops-lab-mirror") and not engine.ran("run")


@pytest.mark.parametrize(
    ("env", "port", "message"),
    [({"LAB_MIRROR": "10.0.0.9:5000"}, "", "unset LAB_MIRROR"), ({}, "99999", "MIRROR_PORT")],
)
def test_mirror_refuses(lab, engine, env, port, message):
    s, runner = lab.settings(**env)
    with pytest.raises(LabError, match=message):
        bundle.mirror(s, runner, port)
    assert not engine.ran("run")
