"""Sample encoding: passthrough of JPEG/PNG/WebP bytes, re-encoding only to resize or convert, bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sslkit.data.encoding import BadImage, EncodeOptions, encode_sample
from tests.data.ingest_helpers import image_bytes

FAST, FULL = EncodeOptions(), EncodeOptions(verify="full")


@pytest.mark.parametrize(("fmt", "ext"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_passthrough_keeps_the_bytes(fmt: str, ext: str) -> None:
    data = image_bytes(1, fmt)
    encoded = encode_sample(data, FAST)
    assert encoded.data == data and encoded.ext == ext and encoded.passthrough and encoded.size == (48, 64)
    assert encode_sample(data, FULL).data == data


def test_extension_follows_the_content_not_the_name(tmp_path) -> None:
    path = tmp_path / "really_a_png.JPEG"  # as in ImageNet's n02105855_2933.JPEG
    path.write_bytes(image_bytes(2, "PNG"))
    encoded = encode_sample(str(path), FAST)
    assert encoded.ext == "png" and encoded.data == path.read_bytes()


def test_resize_and_mode_conversions_reencode() -> None:
    big = encode_sample(image_bytes(3, "JPEG", size=(500, 375)), EncodeOptions(max_size=200))
    assert not big.passthrough and big.ext == "jpg" and big.size == (150, 200)
    assert Image.open(io.BytesIO(big.data)).size == (200, 150)

    cmyk = encode_sample(image_bytes(4, "JPEG", mode="CMYK"), FAST)
    assert cmyk.ext == "jpg" and not cmyk.passthrough and Image.open(io.BytesIO(cmyk.data)).mode == "RGB"

    palette = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    out = encode_sample(buffer.getvalue(), FAST)
    assert out.ext == "png" and not out.passthrough and Image.open(io.BytesIO(out.data)).mode == "RGB"

    deep = Image.fromarray(np.full((4, 4), 65535 // 2, dtype=np.uint16))
    buffer = io.BytesIO()
    deep.save(buffer, format="PNG")
    grey = Image.open(io.BytesIO(encode_sample(buffer.getvalue(), FAST).data))
    assert grey.mode == "L" and np.asarray(grey).max() == 127  # 32767/65535 of 255: scaled, not clipped to 255

    bmp = io.BytesIO()
    Image.new("RGB", (5, 3), (10, 20, 30)).save(bmp, format="BMP")
    lossless = encode_sample(bmp.getvalue(), FAST)
    assert lossless.ext == "png" and np.asarray(Image.open(io.BytesIO(lossless.data)))[0, 0].tolist() == [10, 20, 30]


def test_pil_images_use_the_chosen_format() -> None:
    image = Image.new("L", (6, 4), 7)
    assert encode_sample(image, FAST).ext == "png"
    assert encode_sample(image, EncodeOptions(image_format="jpg")).ext == "jpg"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_and_empty_files_are_bad(fmt: str) -> None:
    data = image_bytes(5, fmt, size=(64, 64))
    with pytest.raises(BadImage, match="decode|readable"):
        encode_sample(data[: len(data) * 2 // 3], FAST)
    with pytest.raises(BadImage, match="empty"):
        encode_sample(b"", FAST)
    with pytest.raises(BadImage, match="not a readable image"):
        encode_sample(b"hello, not an image", FAST)


def test_jpeg_without_end_marker_but_decodable_is_kept() -> None:
    data = image_bytes(6) + b"\0" * 2000  # trailing padding pushes the EOI out of the checked tail
    assert encode_sample(data, FAST).data == data


def test_unreadable_path_is_bad(tmp_path) -> None:
    with pytest.raises(BadImage, match="unreadable"):
        encode_sample(str(tmp_path / "missing.jpg"), FAST)
