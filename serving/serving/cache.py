"""The last good model on local disk, so a server can start while MLflow is unreachable.

    <cache dir>/current.json          {"version": "7", "name": ..., "alias": ..., ...}
    <cache dir>/models/<version>/     the model's files, as downloaded from the registry

A model is written here only after it loaded and passed the server's checks, and
`current.json` is replaced in one atomic rename after its folder is complete, so a reader
sees the previous model or the new one, never half of one. Several workers may write the
same version at once: each copies into its own temporary folder and the first rename wins.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger("serving.cache")

META_KEYS = (
    "name",
    "alias",
    "version",
    "run_id",
    "git_sha",
    "saved_at",
    "sha256",
    "gated_sha256",
)


class ModelCache:
    def __init__(self, root: str | os.PathLike, name: str, alias: str):
        self.root = Path(root)
        self.name = name
        self.alias = alias

    @property
    def pointer(self) -> Path:
        return self.root / "current.json"

    def save(self, local_dir: str | os.PathLike, meta: dict) -> None:
        """Keep `local_dir` (a loaded, checked model) as the last good model."""
        version = str(meta["version"])
        if not version.isdigit():
            raise ValueError(f"not a model version: {version!r}")
        models = self.root / "models"
        models.mkdir(parents=True, exist_ok=True)
        final = models / version
        if not final.is_dir():
            tmp = models / f".{version}-{uuid.uuid4().hex}"
            shutil.copytree(local_dir, tmp)
            try:
                tmp.rename(final)
            except OSError:  # another worker renamed the same version first
                shutil.rmtree(tmp, ignore_errors=True)
        record = {k: str(meta.get(k, "")) for k in META_KEYS}
        record.update(name=self.name, alias=self.alias, version=version)
        tmp_pointer = self.root / f".current-{uuid.uuid4().hex}.json"
        tmp_pointer.write_text(json.dumps(record, indent=2))
        os.replace(tmp_pointer, self.pointer)
        self._prune(keep=version)

    def _prune(self, keep: str) -> None:
        """Drop older versions and leftovers; the current one is all a restart needs."""
        for path in (self.root / "models").iterdir():
            if path.name != keep and not path.name.startswith("."):
                shutil.rmtree(path, ignore_errors=True)

    def load(self) -> tuple[dict, Path] | None:
        """(record, model folder) of the last good model for this name and alias, or None."""
        try:
            record = json.loads(self.pointer.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring an unreadable model cache at %s (%s)", self.pointer, exc)
            return None
        if not isinstance(record, dict):
            return None
        if (record.get("name"), record.get("alias")) != (self.name, self.alias):
            log.warning(
                "ignoring the model cache at %s: it holds %s@%s, this server serves %s@%s",
                self.root,
                record.get("name"),
                record.get("alias"),
                self.name,
                self.alias,
            )
            return None
        version = str(record.get("version", ""))
        folder = self.root / "models" / version
        if not version.isdigit() or not (folder / "MLmodel").is_file():
            log.warning(
                "ignoring the model cache at %s: version %r is incomplete", self.root, version
            )
            return None
        return record, folder
