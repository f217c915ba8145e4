"""Tar members written as webdataset's ``TarWriter(encoder=False, mtime=0)`` writes them, byte for byte.

``TarWriter`` goes through :mod:`tarfile`'s stream mode: a ``TarInfo`` built, copied and serialised per
member, the data copied through a ``BytesIO`` in 16 KiB pieces and re-buffered in 10 KiB records. For
a sharder that keeps the source files' bytes (passthrough) that overhead is a third of the time spent
per image. Here a member is its 512-byte ustar header (a template with the name, size and checksum
filled in), the data as given and the zero padding, in at most three writes; names that do not fit
ustar (100 bytes or more, non-ASCII) and sizes of 8 GiB or more take :mod:`tarfile`'s own header
(PAX), so every name tarfile accepts is written as it would write it. ``tests/data/test_tarstream.py``
checks the output equals ``TarWriter``'s for the same samples.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # tarfile pads a closed stream to a multiple of this (10,240)
_ZEROS = bytes(RECORD)
_MODE, _USER = 0o444, "bigdata"  # TarWriter's defaults


def _template() -> bytearray:
    info = tarfile.TarInfo("")
    info.mode, info.uname, info.gname, info.mtime = _MODE, _USER, _USER, 0
    header = bytearray(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
    header[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    return header


_TEMPLATE = _template()
_TEMPLATE_SUM = sum(_TEMPLATE) - sum(_TEMPLATE[124:136])  # without the size field (filled per member)


def member_header(name: str, size: int) -> bytes:
    """The header block(s) tarfile writes for a regular file ``name`` of ``size`` bytes."""
    raw = name.encode("ascii", "surrogateescape") if name.isascii() else b""
    if not raw or len(raw) >= 100 or size >= 8 ** 11:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uname, info.gname, info.mtime = size, _MODE, _USER, _USER, 0
        return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    header = _TEMPLATE.copy()
    header[: len(raw)] = raw
    size_field = b"%011o\0" % size
    header[124:136] = size_field
    header[148:155] = b"%06o\0" % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return bytes(header)


class TarStream:
    """Appends members to ``file`` (anything with ``write(bytes)``); ``offset`` is the bytes written."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.offset = 0

    def add(self, name: str, data: bytes, header: bytes | None = None) -> int:
        """Write one member (``header`` from :func:`member_header` if already built); returns its data offset."""
        header = header if header is not None else member_header(name, len(data))
        pad = -len(data) % BLOCK
        self._file.write(header)
        self._file.write(data)
        if pad:
            self._file.write(_ZEROS[:pad])
        start = self.offset + len(header)
        self.offset = start + len(data) + pad
        return start

    def close(self) -> None:
        """The two zero end blocks, then zeros to a whole record (as tarfile closes a stream)."""
        end = self.offset + 2 * BLOCK
        self._file.write(_ZEROS[: 2 * BLOCK + -end % RECORD])
        self.offset = closed_size(self.offset)


def member_size(header: bytes, size: int) -> int:
    """Bytes a member takes in the tar: its header block(s) and its data padded to whole blocks."""
    return len(header) + -(-size // BLOCK) * BLOCK


def closed_size(content: int) -> int:
    """File size once closed after ``content`` bytes of members: two zero end blocks, padded to a record."""
    return -(-(content + 2 * BLOCK) // RECORD) * RECORD
