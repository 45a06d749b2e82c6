"""Artifact files, named by their sha256, in a local directory or an object store.

One code path for both: pyarrow's filesystems (`LocalFileSystem`, `S3FileSystem`) give
streamed writes and random-access reads, so a 4 GB model is never held in memory and a node's
cut download resumes at any byte. A file is written under a temporary name and moved to its
content address once its hash is known: a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

#: Bytes per write and per read; big enough for the object store's multipart uploads.
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int


class BlobWriter:
    """A new file being written: hashed and counted as it goes."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.tmp = f"{store.root}/tmp/{uuid.uuid4().hex}"
        self._out = store.fs.open_output_stream(self.tmp, compression=None)
        self._hash = hashlib.sha256()
        self.size = 0
        self.committed = False

    def write(self, chunk: bytes) -> None:
        self._out.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> Blob:
        """What was written; still under its temporary name, until `commit`."""
        if not self._out.closed:
            self._out.close()
        return Blob(self._hash.hexdigest(), self.size)

    def commit(self) -> Blob:
        """The file under its content address (kept once, however often it is added)."""
        blob = self.finish()
        final = self.store.path(blob.sha256)
        if self.store.exists(blob.sha256):
            self.store.fs.delete_file(self.tmp)
        else:
            self.store.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
            self.store.fs.move(self.tmp, final)
        self.committed = True
        return blob

    def abort(self) -> None:
        """Nothing kept (after `commit`, the file is the store's: left alone)."""
        if self.committed:
            return
        if not self._out.closed:
            self._out.close()
        if self.store.fs.get_file_info(self.tmp).type == pafs.FileType.File:
            self.store.fs.delete_file(self.tmp)


class BlobStore:
    """`uri`: a local directory, or `s3://bucket/prefix` (credentials from the environment)."""

    def __init__(self, uri: str) -> None:
        if "://" not in uri:
            uri = str(Path(uri).expanduser().absolute())
        self.fs, self.root = pafs.FileSystem.from_uri(uri)
        self.root = self.root.rstrip("/")
        self.fs.create_dir(f"{self.root}/tmp", recursive=True)

    def path(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def exists(self, sha256: str) -> bool:
        return self.fs.get_file_info(self.path(sha256)).type == pafs.FileType.File

    def open(self, sha256: str) -> pa.NativeFile:
        """Random access (seek, read) to a stored file."""
        return self.fs.open_input_file(self.path(sha256))

    def delete(self, sha256: str) -> None:
        if self.exists(sha256):
            self.fs.delete_file(self.path(sha256))

    def check(self, blob: Blob) -> str | None:
        """What is wrong with a stored file (missing, cut, changed), or None."""
        if not self.exists(blob.sha256):
            return "the file is missing"
        digest, size = hashlib.sha256(), 0
        with self.open(blob.sha256) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        if size != blob.size or digest.hexdigest() != blob.sha256:
            return f"the file changed: {size} bytes with sha256 {digest.hexdigest()[:12]}…"
        return None
