"""av-seld download: resumable, checksum-checked downloads from a local HTTP server standing in for Zenodo, and
unpacking of single and split ZIP archives into the STARSS23 / TAU-SRIR layouts."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import socket
import struct
import subprocess
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from av_seld.cli import main
from av_seld.commands.download import BASE_URL_ENV
from av_seld.errors import InputError
from av_seld.io import download
from av_seld.io.download import Dataset, Part, RemoteFile

SPLITS = ("dev-train-sony", "dev-train-tau", "dev-test-sony", "dev-test-tau")


class FakeZenodo:
    """Serves ``files[record][name]`` at /records/RECORD/files/NAME and the record's file list at
    /api/records/RECORD, honouring ``Range``; ``cut_after`` bytes end a response early (a broken connection)."""

    def __init__(self):
        self.files: dict[int, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: int | None = None
        self.listed_md5: dict[str, str] = {}  # overrides of the API's md5 per name
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append((self.path, self.headers.get("Range")))
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:2] == ["api", "records"] and len(parts) == 3:
                    entries = [{"key": name, "size": len(data),
                                "checksum": "md5:" + fake.listed_md5.get(name, hashlib.md5(data).hexdigest())}
                               for name, data in fake.files.get(int(parts[2]), {}).items()]
                    body = json.dumps({"id": int(parts[2]), "files": entries}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if parts[0] != "records" or len(parts) != 4 or parts[3] not in fake.files.get(int(parts[1]), {}):
                    self.send_error(404)
                    return
                data = fake.files[int(parts[1])][parts[3]]
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if fake.cut_after is not None:
                    body = body[:fake.cut_after]
                    self.close_connection = True
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def zenodo():
    server = FakeZenodo()
    yield server
    server.close()


def zip_bytes(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def starss_members(folder: str, suffix: str) -> dict[str, bytes]:
    """A tiny STARSS23-like archive: two clips per split under ``folder/`` (distinct bytes per file)."""
    return {f"{folder}/{split}/fold{4 if 'test' in split else 3}_room{k}_mix00{k}.{suffix}":
            f"{folder} {split} {k} ".encode() * (50 + 7 * k) for split in SPLITS for k in (1, 2)}


def split_zip(data: bytes, num_parts: int) -> list[bytes]:
    """Cut a single-file ZIP into an Info-ZIP split archive (``.z01``, ..., ``.zip``): the split signature first,
    local headers addressed by (part number, offset in the part), the central directory in the last part."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
        cd_start = z.start_dir
    stream = b"PK\x07\x08" + data[:cd_start]
    part_size = -(-len(stream) // num_parts)
    pieces = [stream[k:k + part_size] for k in range(0, len(stream), part_size)]
    last = len(pieces) - 1  # the central directory follows the last piece, in the same part
    directory, pos = bytearray(data[cd_start:]), 0
    for info in infos:
        name_len, extra_len, comment_len = struct.unpack("<3H", directory[pos + 28:pos + 34])
        disk, offset = divmod(info.header_offset + 4, part_size)
        struct.pack_into("<H", directory, pos + 34, disk)
        struct.pack_into("<L", directory, pos + 42, offset)
        pos += 46 + name_len + extra_len + comment_len
    cd_size = pos
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", last, last, len(infos), len(infos), cd_size, len(pieces[last]), 0)
    pieces[last] = pieces[last] + bytes(directory[:cd_size]) + end
    return pieces


def fake_datasets(archives: dict[str, bytes], pinned: set[str]) -> dict[str, Dataset]:
    """DATASETS with the real records, names and layout, each file of ``archives`` standing for the real one; only
    ``pinned`` names carry an md5 (the others are looked up through the record's API, as unpinned real ones are)."""
    def remote(f):
        if f.name in pinned:
            return RemoteFile(f.name, len(archives[f.name]), hashlib.md5(archives[f.name]).hexdigest())
        return RemoteFile(f.name)

    return {name: Dataset(real.record, {key: Part(tuple(remote(f) for f in part.files), part.folder)
                                        for key, part in real.parts.items()}, real.default_parts)
            for name, real in download.DATASETS.items()}


@pytest.fixture
def starss(zenodo, monkeypatch):
    archives = {"foa_dev.zip": zip_bytes(starss_members("foa_dev", "wav")),
                "mic_dev.zip": zip_bytes(starss_members("mic_dev", "wav"), zipfile.ZIP_STORED),
                "metadata_dev.zip": zip_bytes(starss_members("metadata_dev", "csv")),
                "video_dev.zip": zip_bytes(starss_members("video_dev", "mp4"))}
    zenodo.files[7880637] = archives
    monkeypatch.setattr(download, "DATASETS", fake_datasets(archives, pinned={"foa_dev.zip", "metadata_dev.zip"}))
    return archives


def test_download_starss23_through_the_command_unpacks_the_layout(zenodo, starss, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(BASE_URL_ENV, zenodo.url)
    root = tmp_path / "STARSS23"
    assert main(["download", "starss23", str(root), "--parts", "foa,metadata,video"]) == 0
    for folder, suffix in (("foa_dev", "wav"), ("metadata_dev", "csv"), ("video_dev", "mp4")):
        expected = starss_members(folder, suffix)
        found = {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / folder).rglob("*") if p.is_file()}
        assert found == expected
        assert sorted(p.name for p in (root / folder).iterdir()) == sorted(SPLITS)
    assert not (root / "mic_dev").exists()
    assert sorted(p.name for p in root.iterdir()) == ["archives", "foa_dev", "metadata_dev", "video_dev"]
    assert sorted(p.name for p in (root / "archives").iterdir()) == ["foa_dev.zip", "metadata_dev.zip",
                                                                      "video_dev.zip"]
    # video_dev.zip has no pinned md5: the record's API was asked; the pinned ones were not looked up there
    api = [path for path, _ in zenodo.requests if path.startswith("/api/")]
    assert api == ["/api/records/7880637"]
    assert "downloaded, checked and unpacked" in capsys.readouterr().out

    zenodo.requests.clear()  # a rerun finds every folder and asks nothing
    assert main(["download", "starss23", str(root), "--parts", "foa,metadata,video"]) == 0
    assert zenodo.requests == [] and capsys.readouterr().out.count("already there") == 3


def test_resume_continues_a_truncated_part_file(zenodo, starss, tmp_path):
    data = starss["foa_dev.zip"]
    archive = tmp_path / "archives" / "foa_dev.zip"
    archive.parent.mkdir()
    archive.with_name("foa_dev.zip.part").write_bytes(data[:1000])
    seen = []
    download.fetch(download.file_url(zenodo.url, 7880637, "foa_dev.zip"), archive, size=len(data),
                   md5=hashlib.md5(data).hexdigest(), progress=lambda name, done, total: seen.append(done))
    assert archive.read_bytes() == data and not archive.with_name("foa_dev.zip.part").exists()
    assert zenodo.requests[-1][1] == "bytes=1000-" and seen[-1] == len(data)


def test_a_broken_connection_keeps_the_part_file_and_a_rerun_finishes(zenodo, starss, tmp_path):
    data = starss["foa_dev.zip"]
    archive = tmp_path / "foa_dev.zip"
    url = download.file_url(zenodo.url, 7880637, "foa_dev.zip")
    md5 = hashlib.md5(data).hexdigest()
    zenodo.cut_after = 700
    with pytest.raises(InputError, match="rerun to resume") as err:
        download.fetch(url, archive, size=len(data), md5=md5)
    assert url in str(err.value)
    assert not archive.exists() and archive.with_name("foa_dev.zip.part").read_bytes() == data[:700]
    zenodo.cut_after = None
    download.fetch(url, archive, size=len(data), md5=md5)
    assert archive.read_bytes() == data and zenodo.requests[-1][1] == "bytes=700-"


def test_checksum_mismatch_leaves_nothing(zenodo, starss, tmp_path, monkeypatch):
    zenodo.listed_md5["video_dev.zip"] = "0" * 32  # the record's API says another md5 than the bytes have
    with pytest.raises(InputError, match="checksum mismatch") as err:
        download.download_dataset("starss23", tmp_path, ("video",), base_url=zenodo.url)
    assert "/records/7880637/files/video_dev.zip" in str(err.value) and "0" * 32 in str(err.value)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    assert not (tmp_path / "video_dev").exists()


def test_an_existing_archive_that_does_not_match_is_reported(zenodo, starss, tmp_path):
    (tmp_path / "archives").mkdir()
    (tmp_path / "archives" / "metadata_dev.zip").write_bytes(b"not the archive")
    with pytest.raises(InputError, match="does not match the record"):
        download.download_dataset("starss23", tmp_path, ("metadata",), base_url=zenodo.url)


def test_offline_error_names_the_url(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = download.file_url(f"http://127.0.0.1:{port}", 7880637, "metadata_dev.zip")
    with pytest.raises(InputError, match="cannot connect") as err:
        download.fetch(url, tmp_path / "metadata_dev.zip", size=10, md5="0" * 32)
    assert str(err.value).startswith(url)
    assert list(tmp_path.iterdir()) == []


def test_offline_command_exits_with_a_clear_error(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{port}")
    assert main(["download", "tau-srir", str(tmp_path)]) == 2  # no pinned md5: the record's API is asked first
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}/api/records/6408611" in err and "cannot connect" in err


def test_missing_file_on_the_server_is_an_http_error(zenodo, tmp_path):
    zenodo.files[1] = {}
    with pytest.raises(InputError, match="HTTP 404"):
        download.fetch(download.file_url(zenodo.url, 1, "x.zip"), tmp_path / "x.zip", size=None, md5="0" * 32)


def test_unknown_part_is_refused(tmp_path):
    with pytest.raises(InputError, match="no part foa_eval"):
        download.download_dataset("starss23", tmp_path, ("foa_eval",))


def test_split_archive_downloads_and_unpacks_into_the_response_folder(zenodo, tmp_path, monkeypatch):
    members = {"TAU-SRIR_DB/rirdata.mat": b"info " * 300, "TAU-SRIR_DB/measinfo.mat": b"meas " * 100,
               "TAU-SRIR_DB/rirs_01_bomb_shelter.mat": bytes(range(256)) * 40,
               "TAU-SRIR_DB/rirs_10_tc352.mat": b"\x00\x01" * 3000}
    pieces = split_zip(zip_bytes(members), num_parts=4)  # .z01 .z02 .z03 .zip, as the record has
    assert len(pieces) == 4
    archives = {f"TAU-SRIR_DB.{ext}": piece for ext, piece in zip(("z01", "z02", "z03", "zip"), pieces)}
    zenodo.files[6408611] = archives
    monkeypatch.setattr(download, "DATASETS", fake_datasets(archives, pinned=set()))
    results = download.download_dataset("tau-srir", tmp_path, base_url=zenodo.url, remove_archives=True)
    assert [r.folder for r in results] == [tmp_path / "TAU-SRIR_DB"]
    found = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert found == members  # archives removed, nothing else left


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs Info-ZIP's zip")
def test_split_archive_of_info_zip_is_read(tmp_path):
    source = tmp_path / "src" / "TAU-SRIR_DB"
    source.mkdir(parents=True)
    rng = random.Random(0)  # incompressible bytes, so that the archive needs several 64 kB parts
    members = {"a.mat": rng.randbytes(150_000), "b.mat": b"text " * 20000, "sub/c.mat": b""}
    for name, data in members.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    subprocess.run(["zip", "-q", "-r", "-s", "64k", str(tmp_path / "TAU-SRIR_DB.zip"), "TAU-SRIR_DB"],
                   cwd=source.parent, check=True)
    parts = sorted(tmp_path.glob("TAU-SRIR_DB.z[0-9]*")) + [tmp_path / "TAU-SRIR_DB.zip"]
    assert len(parts) >= 2
    out = download.unpack(parts, tmp_path / "out", "TAU-SRIR_DB")
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == members


def test_archive_without_the_top_folder_goes_under_it(tmp_path):
    (tmp_path / "x.zip").write_bytes(zip_bytes({"dev-test-tau/fold4_room2_mix001.csv": b"0,1,0,10,0\n"}))
    out = download.unpack([tmp_path / "x.zip"], tmp_path, "metadata_dev")
    assert (out / "dev-test-tau" / "fold4_room2_mix001.csv").read_bytes() == b"0,1,0,10,0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata_dev", "x.zip"]


def test_damaged_or_hostile_archives_leave_no_folder(tmp_path):
    good = zip_bytes({"foa_dev/dev-train-tau/a.wav": b"abc" * 1000})
    damaged = bytearray(good)
    damaged[30 + len("foa_dev/dev-train-tau/a.wav") + 5] ^= 0xFF  # inside the member's deflated data
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(InputError, match="damaged"):
        download.unpack([tmp_path / "damaged.zip"], tmp_path, "foa_dev")
    (tmp_path / "evil.zip").write_bytes(zip_bytes({"../escape.txt": b"x"}))
    with pytest.raises(InputError, match="outside the target folder"):
        download.unpack([tmp_path / "evil.zip"], tmp_path, "foa_dev")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.zip", "evil.zip"]
