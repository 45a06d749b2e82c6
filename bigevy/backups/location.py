"""Where backups are kept: a directory or an object store prefix (pyarrow's filesystems), and
copying into and out of it with every file's size and sha256 counted on the way.

Every stream is opened with `compression=None`: pyarrow otherwise decompresses a `.zst` file
as it reads it (and compresses as it writes), which changes the bytes a backup must keep.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Copied:
    path: str  # relative to the backup
    size: int
    sha256: str


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path) of a local directory or an `s3://bucket/prefix`."""
    if "://" not in uri:
        uri = str(Path(uri).expanduser().absolute())
    fs, root = pafs.FileSystem.from_uri(uri)
    return fs, root.rstrip("/")


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def files_under(fs: pafs.FileSystem, root: str) -> Iterator[str]:
    """Every file below `root`, as paths relative to it (nothing if it does not exist)."""
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type == pafs.FileType.File:
            yield info.path[len(root) + 1 :]


def copy_file(
    src_fs: pafs.FileSystem,
    src: str,
    dst_fs: pafs.FileSystem,
    dst: str,
    advance: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Stream one file across, hashing it; (size, sha256)."""
    digest, size = hashlib.sha256(), 0
    parent = dst.rsplit("/", 1)[0]
    dst_fs.create_dir(parent, recursive=True)
    reading = src_fs.open_input_stream(src, compression=None)
    with reading as reader, dst_fs.open_output_stream(dst, compression=None) as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if advance:
                advance(len(chunk))
    return size, digest.hexdigest()


def copy_tree(
    src_fs: pafs.FileSystem,
    src_root: str,
    dst_fs: pafs.FileSystem,
    dst_root: str,
    prefix: str,
    advance: Callable[[int], None] | None = None,
    skip: Collection[str] = (),
) -> list[Copied]:
    """Every file under `src_root`, copied under `dst_root` (but those whose `prefix/...`
    path is in `skip`). A file that goes while this runs is skipped: what a backup needs is
    pinned (LanceDB tags) or copied twice around the moment it is needed for (packages)."""
    copied = []
    for relative in files_under(src_fs, src_root):
        if f"{prefix}/{relative}" in skip:
            continue
        try:
            size, sha = copy_file(
                src_fs, f"{src_root}/{relative}", dst_fs, f"{dst_root}/{relative}", advance
            )
        except FileNotFoundError:
            continue
        copied.append(Copied(f"{prefix}/{relative}", size, sha))
    return copied


def digest(fs: pafs.FileSystem, path: str) -> tuple[int, str]:
    """(size, sha256) of a stored file."""
    sha, size = hashlib.sha256(), 0
    with fs.open_input_stream(path, compression=None) as reader:
        while chunk := reader.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()
