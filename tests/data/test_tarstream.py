"""The shard writer's tar members are webdataset's TarWriter's, byte for byte, and read back by tarfile."""

from __future__ import annotations

import io
import tarfile

import pytest
from webdataset import TarWriter

from sslkit.data.tarstream import TarStream, closed_size, member_header, member_size

SAMPLES = [
    ("a", {"jpg": b"\xff\xd8" + bytes(range(256)) * 3, "cls": b"7"}),
    ("empty", {"png": b"", "cls": b"0"}),
    ("exact-block", {"webp": b"x" * 1024}),
    ("k" * 95, {"jpg": b"long name: 95 + 4 characters"}),  # 99: the last that fits ustar
    ("k" * 96, {"jpg": b"100 characters: a PAX header"}),
    ("n" * 300, {"jpg": b"300", "cls": b"12"}),
    ("caf\u00e9-\u732b", {"jpg": b"non-ASCII key"}),
]


def reference_bytes() -> bytes:
    out = io.BytesIO()
    writer = TarWriter(out, encoder=False, mtime=0)
    for key, members in SAMPLES:
        writer.write({"__key__": key, **members})
    writer.tarstream.close()
    return out.getvalue()


def our_bytes() -> tuple[bytes, dict[str, int]]:
    out = io.BytesIO()
    stream = TarStream(out)
    offsets = {}
    for key, members in SAMPLES:
        for ext in sorted(members):
            offsets[f"{key}.{ext}"] = stream.add(f"{key}.{ext}", members[ext])
    stream.close()
    return out.getvalue(), offsets


def test_members_are_written_as_webdataset_writes_them() -> None:
    ours, _ = our_bytes()
    assert ours == reference_bytes()


def test_offsets_point_at_each_members_data_and_sizes_add_up() -> None:
    data, offsets = our_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == list(offsets)
        for m in members:
            assert m.offset_data == offsets[m.name]
            assert tar.extractfile(m).read() == data[m.offset_data: m.offset_data + m.size]
            assert (m.mode, m.uname, m.gname, m.mtime) == (0o444, "bigdata", "bigdata", 0)
    content = sum(member_size(member_header(f"{k}.{e}", len(v)), len(v)) for k, ms in SAMPLES for e, v in ms.items())
    assert closed_size(content) == len(data)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 8 ** 11 - 1])
def test_header_equals_tarfiles_for_any_size_ustar_holds(size: int) -> None:
    info = tarfile.TarInfo("sample.jpg")
    info.size, info.mode, info.uname, info.gname, info.mtime = size, 0o444, "bigdata", "bigdata", 0
    assert member_header("sample.jpg", size) == info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def test_a_size_beyond_ustar_takes_a_pax_header() -> None:
    header = member_header("huge.bin", 8 ** 11)
    assert len(header) > 512 and b"size=" in header
