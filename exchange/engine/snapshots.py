"""Periodic snapshots of the whole core state, written atomically.

``snapshot-<journal index>.bin`` holds the core state after every journal record with a lower
index, framed with a CRC. It is written to a temporary file, fsynced, renamed into place and
the directory fsynced, so a crash leaves either the old set of snapshots or the new one.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from exchange.engine.journal import fsync_directory

PREFIX = "snapshot-"
SUFFIX = ".bin"
_HEADER = struct.Struct("<II")


class SnapshotFile(msgspec.Struct, array_like=True, frozen=True):
    journal_index: int
    """Records with an index below this are inside the snapshot."""
    seq: int
    ts: int
    state_hash: str
    core: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SnapshotFile)


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    journal_index: int


def snapshot_path(directory: Path, journal_index: int) -> Path:
    return directory / f"{PREFIX}{journal_index:012d}{SUFFIX}"


def write_snapshot(directory: Path, snapshot: SnapshotFile) -> Path:
    """Atomically write ``snapshot``; returns its path."""
    payload = _encoder.encode(snapshot)
    data = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    final = snapshot_path(directory, snapshot.journal_index)
    temporary = final.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    fsync_directory(directory)
    return final


def list_snapshots(directory: Path) -> list[SnapshotInfo]:
    """Snapshot files, newest (highest journal index) first. Leftover ``.tmp`` files ignored."""
    found = []
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        digits = path.name[len(PREFIX) : -len(SUFFIX)]
        if digits.isdigit():
            found.append(SnapshotInfo(path, int(digits)))
    return sorted(found, key=lambda info: info.journal_index, reverse=True)


def read_snapshot(path: Path) -> SnapshotFile | None:
    """The snapshot in ``path``, or None if it is damaged (never raises for bad content)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    length, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if len(payload) != length or zlib.crc32(payload) != checksum:
        return None
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError:
        return None
