"""The storage seam: published Parquet snapshots under one fsspec root (a local directory or an s3:// URL).

Publishing is two steps: the file is written completely under `_tmp/`, then moved to its final, never-reused
name; the version becomes visible only when its database row commits. A crash in between leaves a file that no
row points at, which `cleanup_orphans` removes after a grace period.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from fsspec.core import url_to_fs


@dataclass
class Storage:
    root: str

    def __post_init__(self) -> None:
        self.fs, self.base = url_to_fs(self.root)
        self.base = self.base.rstrip("/")
        self.fs.makedirs(self.base, exist_ok=True)

    @property
    def is_local(self) -> bool:
        return "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def temp_path(self, dataset_code: str) -> str:
        directory = self.path(dataset_code, "_tmp")
        self.fs.makedirs(directory, exist_ok=True)
        return f"{directory}/{uuid.uuid4().hex}.parquet"

    def final_path(self, dataset_code: str, version: int, checksum: str) -> str:
        self.fs.makedirs(self.path(dataset_code), exist_ok=True)
        return self.path(dataset_code, f"v{version:06d}-{checksum[:16]}.parquet")

    def open(self, path: str, mode: str = "rb"):  # noqa: ANN201
        return self.fs.open(path, mode)

    def move(self, source: str, target: str) -> None:
        # A rename on a local disk (atomic); copy + delete on object stores, where the DB row is the publish point.
        self.fs.mv(source, target)

    def delete(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path)

    def size(self, path: str) -> int:
        return int(self.fs.size(path))

    def cleanup_orphans(self, referenced: set[str], grace_seconds: float = 3600) -> list[str]:
        """Remove temp files and unreferenced snapshots older than the grace period; return what was removed."""
        removed = []
        now = time.time()
        for path in self.fs.find(self.base):
            if path in referenced or not path.endswith(".parquet"):
                continue
            try:
                modified = self.fs.modified(path).timestamp()
            except (NotImplementedError, OSError):
                continue
            if now - modified >= grace_seconds:
                self.fs.rm(path)
                removed.append(path)
        return removed


def storage_for(root: str) -> Storage:
    return Storage(root)


