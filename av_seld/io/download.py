"""Download the real datasets from their Zenodo records: STARSS23 and the TAU spatial room impulse responses.

Each archive is fetched into ``ROOT/archives/NAME.part`` with HTTP ``Range`` requests, so a rerun after a broken
connection continues where it stopped; it gets its final name only once its size and MD5 match the record's. The
archive is then unpacked into a hidden folder beside its target (``ROOT/.foa_dev.unpacking``) that is renamed to
``ROOT/foa_dev`` when every member has been written and CRC-checked, so a folder under its final name is complete and
a rerun skips it. Split ZIP archives (``NAME.z01``, ``NAME.z02``, ..., ``NAME.zip``, Info-ZIP ``zip -s``, as the TAU
database is published) are read in place, without joining them first (:func:`extract_zip`).

The archive names, sizes and MD5 checksums are pinned in :data:`DATASETS` where a public source gave them (see the
comment there); a file without a pinned MD5 takes the size and MD5 that the record's Zenodo API lists
(``/api/records/ID``), and the download is checked against those.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from av_seld.errors import InputError

log = logging.getLogger(__name__)

ZENODO_URL = "https://zenodo.org"
ARCHIVE_DIR = "archives"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Zenodo record; ``size`` (bytes) and ``md5`` None where no source pinned them."""

    name: str
    size: int | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Part:
    """One archive (one file, or the ordered parts of a split ZIP, ``.zip`` last) and the folder it unpacks into."""

    files: tuple[RemoteFile, ...]
    folder: str


@dataclass(frozen=True)
class Dataset:
    record: int
    parts: dict[str, Part]
    default_parts: tuple[str, ...]


# Where these values come from (no network was available when they were written down; each was read from public
# code or documentation found by search):
# - STARSS23 (https://zenodo.org/records/7880637, DOI 10.5281/zenodo.7880637; file names from the record's README):
#   foa_dev.zip 3406085425 bytes / md5 316b834e..., metadata_dev.zip 1165845 bytes / md5 e73af95a... as a public
#   download script lists them (size and md5 checked with aria2c + md5sum there); metadata_dev.zip's md5 and
#   mic_dev.zip's md5 06967bcc... also appear in a second project's STARSS23 fetch code. mic_dev.zip's size and
#   video_dev.zip's size and md5 were not found: they are taken from the record's API at download time.
# - TAU-SRIR DB (https://zenodo.org/records/6408611, DOI 10.5281/zenodo.6408611): the split archive
#   TAU-SRIR_DB.z01, .z02, .z03, .zip (file names from the database README and SpatialScaper's prepare_rirs.py);
#   no size or md5 was found, so all four are checked against the record's API. The ambient-noise archive
#   (TAU-SNoise_DB) is not fetched: only the responses are used.
DATASETS: dict[str, Dataset] = {
    "starss23": Dataset(
        record=7880637,
        parts={
            "foa": Part((RemoteFile("foa_dev.zip", 3406085425, "316b834ee6393c22862c314cc3c7ebb0"),), "foa_dev"),
            "mic": Part((RemoteFile("mic_dev.zip", None, "06967bcc8def1580c2425fabc311dbd2"),), "mic_dev"),
            "metadata": Part((RemoteFile("metadata_dev.zip", 1165845, "e73af95a6d5f3f7e009ac6a70804f44a"),),
                             "metadata_dev"),
            "video": Part((RemoteFile("video_dev.zip"),), "video_dev"),
        },
        default_parts=("foa", "metadata", "video"),
    ),
    "tau-srir": Dataset(
        record=6408611,
        parts={"srir": Part(tuple(RemoteFile(f"TAU-SRIR_DB.{ext}") for ext in ("z01", "z02", "z03", "zip")),
                            "TAU-SRIR_DB")},
        default_parts=("srir",),
    ),
}

Progress = Callable[[str, int, int | None], None]  # (file name, bytes done, total bytes or None)


def file_url(base_url: str, record: int, name: str) -> str:
    return f"{base_url.rstrip('/')}/records/{record}/files/{name}?download=1"


def record_api_url(base_url: str, record: int) -> str:
    return f"{base_url.rstrip('/')}/api/records/{record}"


def _failure(url: str, err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
        return f"cannot connect ({err}); check the network connection"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"no answer within {TIMEOUT_S:.0f} s"
    return f"connection broken ({err})"


def _open(url: str, offset: int = 0):
    headers = {"User-Agent": "av-seld"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def record_files(base_url: str, record: int) -> dict[str, RemoteFile]:
    """Name → size and MD5 of every file of a Zenodo record, from its API (``files[].key/size/checksum``)."""
    url = record_api_url(base_url, record)
    try:
        with _open(url) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as err:
        raise InputError(url, f"cannot read the record's file list: {_failure(url, err)}") from None
    except ValueError as err:
        raise InputError(url, f"the record's file list is not JSON: {err}") from None
    files = payload.get("files")
    entries = files.get("entries", []) if isinstance(files, dict) else files or []
    listed = {}
    for entry in entries if isinstance(entries, list) else entries.values():
        checksum = str(entry.get("checksum", ""))
        if "key" in entry and checksum.startswith("md5:"):
            listed[entry["key"]] = RemoteFile(entry["key"], int(entry["size"]), checksum[4:])
    return listed


def resolve_checksums(files: list[RemoteFile], base_url: str, record: int) -> list[RemoteFile]:
    """``files`` with every missing size or MD5 filled in from the record's API (queried only when one is missing)."""
    if all(f.md5 is not None for f in files):
        return files
    listed = record_files(base_url, record)
    resolved = []
    for f in files:
        if f.md5 is not None:  # pinned here: the record is not asked
            resolved.append(f)
            continue
        if f.name not in listed:
            raise InputError(record_api_url(base_url, record), f"the record does not list {f.name} with an md5 "
                                                                f"checksum (it lists: {', '.join(sorted(listed))})")
        log.info("%s: size and md5 from the record's API (%d bytes, md5 %s)", f.name, listed[f.name].size,
                 listed[f.name].md5)
        resolved.append(listed[f.name])
    return resolved


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: str | os.PathLike, *, size: int | None, md5: str,
          progress: Progress | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a ``.part`` an earlier run left.

    ``dest`` appears only once the whole file is there and its MD5 (and size, when known) match; a mismatch removes
    the ``.part`` file and raises :class:`InputError`, as does a failed connection (naming the URL and what failed;
    the ``.part`` file is kept for the next run to resume). An existing ``dest`` is checked and kept.
    """
    dest = Path(dest)
    if dest.exists():
        if (size is None or dest.stat().st_size == size) and file_md5(dest) == md5:
            return dest
        raise InputError(dest, f"exists but does not match the record (expected md5 {md5}); delete it to download "
                               "it again")
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.warning("%s: longer than the file (%d > %d bytes); starting again", part, offset, size)
        part.unlink()
        offset = 0
    if size is None or offset < size:
        _download_into(url, part, offset, size, progress, dest.name)
    got_size = part.stat().st_size
    if size is not None and got_size != size:
        raise InputError(url, f"the server sent {got_size} bytes, the record says {size}; the partial file {part} "
                              "is kept, rerun to resume")
    got_md5 = file_md5(part)
    if got_md5 != md5:
        part.unlink()
        raise InputError(url, f"checksum mismatch: md5 {got_md5}, expected {md5}; the download was removed, rerun "
                              "to fetch it again")
    os.replace(part, dest)
    return dest


def _download_into(url: str, part: Path, offset: int, size: int | None, progress: Progress | None,
                   name: str) -> None:
    try:
        response = _open(url, offset)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset and size is None:  # nothing left to send: the .part is the whole file
            return
        raise InputError(url, f"download failed: {_failure(url, err)}") from None
    except (urllib.error.URLError, OSError) as err:
        raise InputError(url, f"download failed: {_failure(url, err)}") from None
    with response:
        if offset and response.status != 206:  # the server ignored the Range header: it sends the whole file
            log.warning("%s: the server does not resume downloads; starting %s again", url, name)
            offset = 0
        length = response.headers.get("Content-Length")
        total = size if size is not None else (offset + int(length) if length is not None else None)
        done = offset
        part.parent.mkdir(parents=True, exist_ok=True)  # only once the server answers: offline leaves nothing
        try:
            with open(part, "ab" if offset else "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(name, done, total)
        except (OSError, http.client.HTTPException) as err:
            raise InputError(url, f"download failed after {done} bytes: {_failure(url, err)}; the partial file "
                                  f"{part} is kept, rerun to resume") from None


# ------------------------------------------------------------------------------------------------------ ZIP reading

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_END64_LOCATOR = b"PK\x06\x07"


class _Joined:
    """The parts of a split archive read as one byte stream; ``disk_start[k]`` is where part k begins in it."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.sizes = [p.stat().st_size for p in paths]
        self.disk_start = [sum(self.sizes[:k]) for k in range(len(paths))]
        self.files = [open(p, "rb") for p in paths]

    def close(self) -> None:
        for f in self.files:
            f.close()

    def read(self, offset: int, count: int) -> bytes:
        chunks = []
        for k, start in enumerate(self.disk_start):
            end = start + self.sizes[k]
            if count <= 0:
                break
            if offset >= end:
                continue
            self.files[k].seek(offset - start)
            chunk = self.files[k].read(min(count, end - offset))
            chunks.append(chunk)
            offset += len(chunk)
            count -= len(chunk)
        return b"".join(chunks)


@dataclass(frozen=True)
class _Member:
    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    offset: int  # of the local header, in the joined stream


def _members(joined: _Joined, where: Path) -> list[_Member]:
    last = len(joined.paths) - 1
    tail_start = max(0, joined.sizes[last] - (1 << 16) - 22)
    tail = joined.read(joined.disk_start[last] + tail_start, joined.sizes[last] - tail_start)
    at = tail.rfind(_END)
    if at < 0:
        raise InputError(where, "not a ZIP archive (no end-of-central-directory record)")
    _, _, cd_disk, _, count, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if 0xFFFFFFFF in (cd_size, cd_offset) or 0xFFFF in (cd_disk, count):
        locator = tail[at - 20:at]
        if len(locator) != 20 or locator[:4] != _END64_LOCATOR:
            raise InputError(where, "ZIP64 archive without its end-of-central-directory locator")
        _, end64_disk, end64_offset, _ = struct.unpack("<4sLQL", locator)
        record = joined.read(joined.disk_start[end64_disk] + end64_offset, 56)
        if record[:4] != _END64:
            raise InputError(where, "ZIP64 end-of-central-directory record not found")
        _, _, _, _, _, cd_disk, _, count, cd_size, cd_offset = struct.unpack("<4sQ2H2L4Q", record)
    if cd_disk >= len(joined.paths):
        raise InputError(where, f"the archive has more parts than the {len(joined.paths)} given (central "
                                f"directory on part {cd_disk + 1})")
    directory = joined.read(joined.disk_start[cd_disk] + cd_offset, cd_size)
    members, pos = [], 0
    for _ in range(count):
        if directory[pos:pos + 4] != _CENTRAL:
            raise InputError(where, "damaged central directory")
        (_, _, _, flags, method, _, _, crc, csize, size, name_len, extra_len, comment_len, disk, _, _,
         offset) = struct.unpack("<4s6H3L5HLL", directory[pos:pos + 46])
        name = directory[pos + 46:pos + 46 + name_len].decode("utf-8" if flags & 0x800 else "cp437")
        extra = directory[pos + 46 + name_len:pos + 46 + name_len + extra_len]
        size, csize, offset, disk = _zip64_fields(extra, size, csize, offset, disk)
        if flags & 0x1:
            raise InputError(where, f"{name} is encrypted")
        if disk >= len(joined.paths):
            raise InputError(where, f"{name} lies on part {disk + 1}, but only {len(joined.paths)} parts were given")
        members.append(_Member(name, method, crc, csize, size, joined.disk_start[disk] + offset))
        pos += 46 + name_len + extra_len + comment_len
    return members


def _zip64_fields(extra: bytes, size: int, csize: int, offset: int, disk: int) -> tuple[int, int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<2H", extra[pos:pos + 4])
        if tag == 1:
            data, k = extra[pos + 4:pos + 4 + length], 0
            values = []
            for value, width, full in ((size, 8, 0xFFFFFFFF), (csize, 8, 0xFFFFFFFF), (offset, 8, 0xFFFFFFFF),
                                       (disk, 4, 0xFFFF)):
                if value == full:
                    value = int.from_bytes(data[k:k + width], "little")
                    k += width
                values.append(value)
            return tuple(values)
        pos += 4 + length
    return size, csize, offset, disk


def _member_path(name: str, where: Path) -> PurePosixPath | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise InputError(where, f"refusing to unpack {name!r}: it points outside the target folder")
    if not path.parts or path.parts[0] == "__MACOSX":
        return None
    return path


def _copy_member(joined: _Joined, member: _Member, out: BinaryIO, where: Path) -> None:
    header = joined.read(member.offset, 30)
    if header[:4] != _LOCAL:
        raise InputError(where, f"{member.name}: local header not found where the central directory points")
    name_len, extra_len = struct.unpack("<2H", header[26:30])
    position = member.offset + 30 + name_len + extra_len
    if member.method == 8:
        inflate = zlib.decompressobj(-15)
    elif member.method != 0:
        raise InputError(where, f"{member.name}: compression method {member.method} is not supported "
                                "(stored and deflate are)")
    crc, written, left = 0, 0, member.compressed_size
    while left > 0:
        chunk = joined.read(position, min(CHUNK_BYTES, left))
        if not chunk:
            raise InputError(where, f"{member.name}: the archive ends inside this member (a part is truncated)")
        position += len(chunk)
        left -= len(chunk)
        try:
            data = inflate.decompress(chunk) if member.method == 8 else chunk
        except zlib.error as err:
            raise InputError(where, f"{member.name}: damaged (deflate data: {err})") from None
        crc = zlib.crc32(data, crc)
        written += len(data)
        out.write(data)
    if member.method == 8:
        data = inflate.flush()
        crc = zlib.crc32(data, crc)
        written += len(data)
        out.write(data)
    if written != member.size or crc != member.crc:
        raise InputError(where, f"{member.name}: damaged (CRC or size does not match the central directory)")


def extract_zip(parts: list[str | os.PathLike], out_dir: str | os.PathLike,
                progress: Progress | None = None) -> list[Path]:
    """Unpack a ZIP archive, single (one path) or split (``.z01``, ``.z02``, ..., ``.zip``, in that order), into
    ``out_dir``; returns the files written. Stored and deflated members, ZIP64; each member's CRC is checked."""
    paths = [Path(p) for p in parts]
    where = paths[-1]
    out_dir = Path(out_dir)
    joined = _Joined(paths)
    written = []
    try:
        members = _members(joined, where)
        total = sum(m.compressed_size for m in members)
        done = 0
        for member in members:
            relative = _member_path(member.name, where)
            if relative is None:
                continue
            target = out_dir.joinpath(*relative.parts)
            if member.name.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                _copy_member(joined, member, out, where)
            written.append(target)
            done += member.compressed_size
            if progress is not None:
                progress(where.name, done, total)
    finally:
        joined.close()
    return written


def unpack(parts: list[Path], root: Path, folder: str, progress: Progress | None = None) -> Path:
    """Unpack an archive into ``root/folder``: into ``root/.folder.unpacking`` first, renamed when complete.

    An archive whose members lie under ``folder/`` (as STARSS23's do) is unpacked as it is; one whose members do
    not is put under ``folder/``.
    """
    target = root / folder
    staging = root / f".{folder}.unpacking"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        extract_zip(parts, staging, progress)
        inside = staging / folder
        if inside.is_dir():
            others = [p.name for p in staging.iterdir() if p.name != folder]
            if others:
                log.info("%s: also holds %s, left out", parts[-1].name, ", ".join(sorted(others)))
            os.replace(inside, target)
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@dataclass(frozen=True)
class DownloadResult:
    folder: Path
    skipped: bool  # the folder was already there


def download_dataset(name: str, root: str | os.PathLike, parts: tuple[str, ...] | None = None, *,
                     base_url: str = ZENODO_URL, remove_archives: bool = False,
                     progress: Progress | None = None) -> list[DownloadResult]:
    """Fetch and unpack ``parts`` of dataset ``name`` (a key of :data:`DATASETS`) into ``root``.

    Archives go to ``root/archives/``; each part unpacks into ``root/<folder>`` (STARSS23: ``foa_dev``, ``mic_dev``,
    ``metadata_dev``, ``video_dev``, each with its ``dev-{train,test}-{sony,tau}`` split folders; TAU-SRIR:
    ``TAU-SRIR_DB``). A part whose folder exists is skipped. ``base_url`` replaces ``https://zenodo.org`` (a mirror,
    or a local server in tests). ``remove_archives`` deletes each archive once its folder is unpacked.
    """
    if name not in DATASETS:
        raise InputError(None, f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    dataset = DATASETS[name]
    parts = dataset.default_parts if parts is None else parts
    unknown = [p for p in parts if p not in dataset.parts]
    if unknown:
        raise InputError(None, f"{name} has no part {', '.join(unknown)} (parts: {', '.join(dataset.parts)})")
    root = Path(root)
    results = []
    for key in parts:
        part = dataset.parts[key]
        if (root / part.folder).is_dir():
            log.info("%s: already there, skipped", root / part.folder)
            results.append(DownloadResult(root / part.folder, True))
            continue
        files = resolve_checksums(list(part.files), base_url, dataset.record)
        archives = [fetch(file_url(base_url, dataset.record, f.name), root / ARCHIVE_DIR / f.name, size=f.size,
                          md5=f.md5, progress=progress) for f in files]
        results.append(DownloadResult(unpack(archives, root, part.folder, progress), False))
        if remove_archives:
            for archive in archives:
                archive.unlink()
    return results


__all__ = ["RemoteFile", "Part", "Dataset", "DATASETS", "ZENODO_URL", "file_url", "record_api_url", "record_files",
           "resolve_checksums", "fetch", "file_md5", "extract_zip", "unpack", "DownloadResult", "download_dataset"]
