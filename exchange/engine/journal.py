"""The append-only command journal: every command the core applied, in order, crash-safe.

Files live in the data directory as segments ``journal-<first index>.log``. A record is

    [u32 little-endian payload length][u32 CRC-32 of the payload][payload]

and the payload is msgpack of ``JournalRecord`` (index, the core's ``last_seq`` before the
command, the input ``ts``, the account, the command). Replaying the records into a core built
from the same configuration reproduces the same state, events and ``seq``s, because the core
is deterministic: ids and seqs come from its own counters.

Writing: ``append`` buffers; ``write`` hands the buffer to the OS; ``sync`` makes it durable
(fsync). The engine acknowledges a command only after the record is written and, depending on
the fsync policy, synced (group commit: one sync covers every record appended before it).

Reading: ``read_segment`` stops at the first record that is short (a torn write) or fails its
CRC (a flipped byte); ``JournalReader.scan`` reports where the valid prefix ends so recovery can
truncate the rest — a damaged record is never half-applied.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from exchange.protocol.messages import CoreCommand

HEADER = struct.Struct("<II")
MAX_RECORD_BYTES = 1 << 24
SEGMENT_PREFIX = "journal-"
SEGMENT_SUFFIX = ".log"


class JournalRecord(msgspec.Struct, array_like=True, frozen=True):
    index: int
    """Position of the record in the whole journal, from 0, gapless."""
    seq_before: int
    """The core's ``last_seq`` before this command: its events start at ``seq_before + 1``."""
    ts: int
    account: str
    command: CoreCommand


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(JournalRecord)


def encode_record(record: JournalRecord) -> bytes:
    payload = _encoder.encode(record)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def segment_path(directory: Path, first_index: int) -> Path:
    return directory / f"{SEGMENT_PREFIX}{first_index:012d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segments in index order as ``(first index, path)``."""
    found = []
    for path in directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
        digits = path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


@dataclass(frozen=True)
class SegmentScan:
    """What reading one segment found."""

    path: Path
    records: int
    valid_bytes: int
    total_bytes: int
    problem: str | None
    """None if the whole file is valid; else why reading stopped (torn / checksum / decode)."""


class SegmentRecords:
    """The valid records of one segment, decoded lazily while iterating (a journal of a
    million records is never held as a list). After iteration ends, ``scan()`` tells where
    the valid prefix ends and why reading stopped. Iterating never raises on damage."""

    def __init__(self, path: Path, data: bytes | None = None) -> None:
        self.path = path
        self._data = path.read_bytes() if data is None else data
        self.count = 0
        self.offset = 0
        self.problem: str | None = None

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, payload)`` of every record whose framing and checksum are intact."""
        data = self._data
        size = len(data)
        header_size = HEADER.size
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        offset = 0
        while offset < size:
            if offset + header_size > size:
                self.problem = f"torn record header at byte {offset}"
                break
            length, checksum = unpack(data, offset)
            start = offset + header_size
            if length > MAX_RECORD_BYTES:
                self.problem = f"implausible record length {length} at byte {offset}"
                break
            if start + length > size:
                self.problem = f"torn record at byte {offset} ({size - start} of {length} bytes)"
                break
            payload = data[start : start + length]
            if crc32(payload) != checksum:
                self.problem = f"checksum mismatch at byte {offset}"
                break
            yield offset, payload
            self.count += 1
            offset = start + length
            self.offset = offset

    def __iter__(self) -> Iterator[JournalRecord]:
        decode = _decoder.decode
        for offset, payload in self.frames():
            try:
                record = decode(payload)
            except msgspec.DecodeError as exc:
                self.problem = f"undecodable record at byte {offset}: {exc}"
                self.offset = offset
                return
            yield record

    def scan(self) -> SegmentScan:
        return SegmentScan(self.path, self.count, self.offset, len(self._data), self.problem)


def read_segment(path: Path, decode: bool = True) -> tuple[list[JournalRecord], SegmentScan]:
    """All valid records of a segment up to the first damaged one. Never raises on damage.

    With ``decode=False`` only the framing and checksums are verified (fast) and just the last
    valid record is decoded and returned.
    """
    reader = SegmentRecords(path)
    if decode:
        records = list(reader)
        return records, reader.scan()
    last: tuple[int, bytes] | None = None
    for last in reader.frames():  # noqa: B007 (the last one is what we want)
        pass
    records = []
    if last is not None:
        try:
            records.append(_decoder.decode(last[1]))
        except msgspec.DecodeError as exc:
            reader.problem = f"undecodable record at byte {last[0]}: {exc}"
            reader.count -= 1
            reader.offset = last[0]
    return records, reader.scan()


class JournalWriter:
    """Appends records to the current segment. Not thread-safe; one writer per directory."""

    def __init__(self, directory: Path, next_index: int) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.next_index = next_index
        self._buffer: list[bytes] = []
        self._fd = -1
        self._dirty = False
        self._open_segment(next_index)

    def _open_segment(self, first_index: int) -> None:
        segments = list_segments(self.directory)
        path = segments[-1][1] if segments else segment_path(self.directory, first_index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if not segments:
            fsync_directory(self.directory)

    def append(self, seq_before: int, ts: int, account: str, command: Any) -> int:
        """Buffer one record; returns its index."""
        index = self.next_index
        self._buffer.append(encode_record(JournalRecord(index, seq_before, ts, account, command)))
        self.next_index = index + 1
        return index

    @property
    def pending(self) -> int:
        """Records appended but not yet handed to the OS."""
        return len(self._buffer)

    def write(self) -> None:
        """Hand buffered records to the OS (survives a process crash, not a power cut)."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._dirty = True

    def sync(self) -> None:
        """Write and fsync: everything appended so far is durable when this returns."""
        self.write()
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def sync_job(self) -> Callable[[], None] | None:
        """A function that fsyncs everything written so far (``write``), for a worker thread:
        it touches only the file descriptor. None when nothing was written since the last
        sync. The caller must let it finish before ``sync``, ``rotate`` or ``close``."""
        if not self._dirty:
            return None
        self._dirty = False
        fd = self._fd
        return lambda: os.fsync(fd)

    def rotate(self) -> None:
        """Start a new segment at ``next_index`` (after a snapshot), syncing the old one."""
        self.sync()
        os.close(self._fd)
        path = segment_path(self.directory, self.next_index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_directory(self.directory)

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


class JournalReader:
    """Reads every segment of a directory in order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def scan(self) -> tuple[list[SegmentScan], int]:
        """Check every segment; returns the scans and the index after the last valid record."""
        scans = []
        next_index = 0
        for _, path in list_segments(self.directory):
            records, scan = read_segment(path, decode=False)
            scans.append(scan)
            if records:
                next_index = records[-1].index + 1
        return scans, next_index

    def records(self, from_index: int = 0) -> Iterator[JournalRecord]:
        """Valid records with ``index >= from_index``, in order; stops at the first damage."""
        segments = list_segments(self.directory)
        for position, (_first, path) in enumerate(segments):
            following = segments[position + 1][0] if position + 1 < len(segments) else None
            if following is not None and following <= from_index:
                continue
            reader = SegmentRecords(path)
            for record in reader:
                if record.index >= from_index:
                    yield record
            if reader.problem is not None:
                return


def fsync_directory(directory: Path) -> None:
    """Make a rename or file creation in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
