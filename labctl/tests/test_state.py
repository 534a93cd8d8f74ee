from __future__ import annotations

import io
import tarfile

import pytest

from labctl import state
from labctl.docker import DockerBackend
from labctl.errors import LabError


def write_state(
    path,
    manifest: str,
    env: bytes = b"POSTGRES_PASSWORD=x\n",
    link_env=False,
    volumes=("postgres-data", "seaweedfs-data"),
    extra: tarfile.TarInfo | None = None,
):
    with tarfile.open(path, "w:gz") as tar:
        for volume in volumes:
            data = b"some data"
            info = tarfile.TarInfo(f"{volume}/file")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.size else None)
        for name, data in (("meta/manifest", manifest.encode()), ("meta/env", env)):
            info = tarfile.TarInfo(name)
            if name == "meta/env" and link_env:
                info.type = tarfile.SYMTYPE
                info.linkname = "/root/.aws/credentials"
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_manifest_round_trip():
    text = state.manifest_text("mlops-lab", "seaweedfs", "abc", saved_at="2026-01-01T00:00:00Z")
    fields = state.parse_manifest(text)
    m = state.check_manifest(fields, "f", "")
    # The MLflow state only: the images travel through a registry, not in the state.
    assert m.volumes == ["postgres-data", "seaweedfs-data"]
    assert (m.backend, m.git_sha, m.saved_at) == ("seaweedfs", "abc", "2026-01-01T00:00:00Z")


def test_meta_archive_is_read_back(tmp_path):
    manifest = state.manifest_text("p", "minio", "abc")
    data = state.meta_archive(manifest, b"A=1\n")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("meta/manifest").read().decode() == manifest
        assert tar.extractfile("meta/env").read() == b"A=1\n"


@pytest.mark.parametrize(
    ("change", "s3_env", "message"),
    [
        ({"format": "3"}, "", "state format '3'; this lab reads formats 1, 2"),
        ({"format": "1"}, "", "a format 1 state with S3_BACKEND=seaweedfs has"),
        ({"s3_backend": "s3fs"}, "", "unknown S3 backend 's3fs'"),
        ({}, "minio", "saved with S3_BACKEND=seaweedfs, but S3_BACKEND=minio here"),
        ({"volumes": "postgres-data seaweedfs-data /etc"}, "", "not a state this lab wrote"),
        ({"volumes": "postgres-data"}, "", "not a state this lab wrote"),
    ],
)
def test_a_state_this_lab_cannot_restore_is_refused(change, s3_env, message):
    fields = state.parse_manifest(state.manifest_text("p", "seaweedfs", "abc"))
    fields.update(change)
    with pytest.raises(LabError, match=message):
        state.check_manifest(fields, "f", s3_env)


def test_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(LabError, match="no lab state at"):
        state.read_meta(tmp_path / "nope.tgz")
    (tmp_path / "x.tgz").write_bytes(b"not a tarball")
    with pytest.raises(LabError, match="is not a lab state"):
        state.read_meta(tmp_path / "x.tgz")
    with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
        pass
    with pytest.raises(LabError, match="no meta/manifest and meta/env inside"):
        state.read_meta(tmp_path / "empty.tgz")


def test_an_env_that_is_a_symlink_is_refused(tmp_path):
    path = write_state(tmp_path / "s.tgz", state.manifest_text("p", "minio", "a"), link_env=True)
    with pytest.raises(LabError, match="meta/env is not a regular file"):
        state.read_meta(path)


@pytest.fixture
def restore(lab_root, settings_for, fake):
    """A docker backend about to restore `lab_root/s.tgz` (a seaweedfs state)."""
    path = write_state(lab_root / "s.tgz", state.manifest_text("mlops-lab", "seaweedfs", "abc"))

    def _backend(**environ):
        s = settings_for(STATE_FILE=str(path), **environ)
        fake.env = s.env
        return DockerBackend(s, fake)

    return _backend


def test_restore_refuses_to_overwrite_a_different_env(lab_root, restore, fake):
    (lab_root / ".env").write_text("POSTGRES_PASSWORD=mine\n")
    with pytest.raises(LabError, match=r"\.env differs from the saved one"):
        restore().state_restore()
    assert (lab_root / ".env").read_text() == "POSTGRES_PASSWORD=mine\n"
    assert not fake.ran("docker run") and not fake.ran("volume rm")


def test_restore_refuses_to_replace_existing_volumes(lab_root, restore, fake):
    fake.on("docker volume inspect", 0)
    with pytest.raises(LabError, match="already exist and restoring would replace their data"):
        restore().state_restore()
    assert not fake.ran("volume rm") and not fake.ran("volume create")
    assert not (lab_root / ".env").exists()


def test_forced_restore_keeps_the_old_env_aside(lab_root, restore, fake):
    (lab_root / ".env").write_text("POSTGRES_PASSWORD=mine\n")
    fake.on("docker volume inspect", 0)
    restore(FORCE="1").state_restore()
    assert fake.ran("docker volume rm mlops-lab_postgres-data")
    assert (lab_root / ".env.before-restore").read_text() == "POSTGRES_PASSWORD=mine\n"
    assert (lab_root / ".env").read_bytes() == b"POSTGRES_PASSWORD=x\n"


def test_restore_into_an_empty_machine(lab_root, restore, fake):
    fake.on("docker volume inspect", 1)
    restore().state_restore()
    created = [c[-1] for c in fake.calls if c[:3] == ["docker", "volume", "create"]]
    assert created == ["mlops-lab_postgres-data", "mlops-lab_seaweedfs-data"]
    assert (lab_root / ".env").read_bytes() == b"POSTGRES_PASSWORD=x\n"


def test_a_state_of_the_older_format_with_its_registry_is_still_restored(
    lab_root, settings_for, fake
):
    manifest = state.manifest_text("mlops-lab", "seaweedfs", "abc").replace(
        "format=2\nproject=mlops-lab\ns3_backend=seaweedfs\nvolumes=postgres-data seaweedfs-data",
        "format=1\nproject=mlops-lab\ns3_backend=seaweedfs\n"
        "volumes=postgres-data seaweedfs-data registry-data",
    )
    vols = ("postgres-data", "seaweedfs-data", "registry-data")
    path = write_state(lab_root / "old.tgz", manifest, volumes=vols)
    fake.on("docker volume inspect", 1)
    DockerBackend(settings_for(STATE_FILE=str(path)), fake).state_restore()
    created = [c[-1] for c in fake.calls if c[:3] == ["docker", "volume", "create"]]
    assert created == [f"mlops-lab_{v}" for v in vols]


def test_save_packs_the_mlflow_state_and_no_image_registry(lab_root, settings_for, fake):
    (lab_root / ".env").write_text("TRAIN_SEED=1\n")
    b = DockerBackend(settings_for(STATE_FILE=str(lab_root / "s.tgz")), fake)
    b.state_save()
    [packer] = [c for c in fake.calls if c[:2] == ["docker", "run"]]
    mounts = [packer[i + 1] for i, a in enumerate(packer) if a == "-v"]
    assert mounts == [
        "mlops-lab_postgres-data:/state/postgres-data:ro",
        "mlops-lab_minio-data:/state/minio-data:ro",
    ]
    assert "registry-data" not in " ".join(packer)


def test_save_needs_a_lab(lab_root, settings_for, fake):
    with pytest.raises(LabError, match=r"no \.env here: there is no lab to save"):
        DockerBackend(settings_for(), fake).state_save()
    (lab_root / ".env").write_text("TRAIN_SEED=1\n")
    fake.on("docker volume inspect", 1)
    with pytest.raises(LabError, match="volume mlops-lab_postgres-data does not exist"):
        DockerBackend(settings_for(), fake).state_save()
    assert not fake.ran("compose") and not fake.ran("docker run")


def test_a_truncated_state_is_refused_before_anything_changes(lab_root, restore, fake):
    state_file = lab_root / "s.tgz"
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) - 20])
    fake.on("docker volume inspect", 0)
    with pytest.raises(LabError, match="is truncated or damaged"):
        restore(FORCE="1").state_restore()
    assert not fake.ran("volume rm") and not fake.ran("volume create")


def test_a_state_without_a_volumes_data_is_refused(lab_root, settings_for, fake):
    path = write_state(
        lab_root / "s.tgz",
        state.manifest_text("mlops-lab", "seaweedfs", "abc"),
        volumes=("postgres-data",),
    )
    fake.on("docker volume inspect", 1)
    s = settings_for(STATE_FILE=str(path))
    with pytest.raises(LabError, match="lacks the data of seaweedfs-data"):
        DockerBackend(s, fake).state_restore()
    assert not fake.ran("volume create")


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_member("postgres-data/../../etc/cron.d/x"), "points outside the lab"),
        (_member("/etc/passwd"), "points outside the lab"),
        (_member("home/user/.bashrc"), "is not part of a lab state"),
        (_member("seaweedfs-data/x", tarfile.SYMTYPE, "/etc/shadow"), "is a link or a device"),
        (_member("seaweedfs-data/y", tarfile.LNKTYPE, "postgres-data/file"), "a link or a device"),
        (_member("registry-data/z"), "is not part of a lab state"),
        (_member("postgres-data/dev", tarfile.CHRTYPE), "is a link or a device"),
    ],
)
def test_a_state_with_anything_but_files_of_its_volumes_is_refused(
    lab_root, settings_for, fake, member, message
):
    path = write_state(
        lab_root / "s.tgz", state.manifest_text("mlops-lab", "seaweedfs", "abc"), extra=member
    )
    fake.on("docker volume inspect", 0)
    with pytest.raises(LabError, match=message):
        DockerBackend(settings_for(STATE_FILE=str(path), FORCE="1"), fake).state_restore()
    assert not fake.ran("volume rm") and not fake.ran("docker run")
    assert not (lab_root / ".env").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (b"POSTGRES_PASSWORD=x\nBASH_ENV=/tmp/x\n", "meta/env line 2: BASH_ENV is not a lab"),
        (b"POSTGRES_IMAGE=evil/postgres:latest\n", "its .env chooses images"),
        (b"GIT_SHA=0123456789ab\nLAB_REMOTE_IMAGES=evil.io/x\n", "GIT_SHA, LAB_REMOTE_IMAGES"),
        (b"STATE_FILE=/home/me/.bashrc\n", "chooses images, tags or files \\(STATE_FILE\\)"),
        (b"POSTGRES_IMAGE: evil/postgres\n", "not a KEY=value line"),
    ],
)
def test_a_saved_env_is_checked_before_anything_changes(lab_root, settings_for, fake, env, message):
    path = write_state(
        lab_root / "s.tgz", state.manifest_text("mlops-lab", "seaweedfs", "abc"), env=env
    )
    fake.on("docker volume inspect", 1)
    with pytest.raises(LabError, match=message):
        DockerBackend(settings_for(STATE_FILE=str(path)), fake).state_restore()
    assert not fake.ran("volume create") and not (lab_root / ".env").exists()


def test_images_from_a_trusted_state_are_restored_when_asked(lab_root, settings_for, fake):
    env = b"POSTGRES_IMAGE=mirror.example/postgres:15\n"
    path = write_state(
        lab_root / "s.tgz", state.manifest_text("mlops-lab", "seaweedfs", "abc"), env=env
    )
    fake.on("docker volume inspect", 1)
    DockerBackend(settings_for(STATE_FILE=str(path), TRUST_STATE_IMAGES="1"), fake).state_restore()
    assert (lab_root / ".env").read_bytes() == env
