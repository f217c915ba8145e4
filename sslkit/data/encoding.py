"""One sample's image bytes for a shard: the original encoded bytes when possible, else a re-encoding.

Passthrough (the default) keeps a JPEG, PNG or WebP file byte for byte when it is plain 8-bit
(``RGB``, ``L``, ``RGBA``, ``LA``) and within ``max_size``: no second lossy generation, no decode.
Validation is cheap by default (``verify="fast"``): the header is parsed (format, mode, size) and
the file must end as its format says (JPEG end-of-image marker, PNG ``IEND`` chunk, WebP RIFF
length); a file that fails the end check is decoded fully, and kept only if that succeeds.
``verify="full"`` decodes every image. An image is re-encoded only to resize it (longer side above
``max_size``, like FFCV's ``max_resolution``) or to convert its mode (CMYK, 16-bit, palette, ...) or
its format (BMP, GIF, TIFF): JPEG sources as JPEG, others in ``image_format``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_FORMATS = ("png", "jpg")  # formats for images that must be (re-)encoded
VERIFY_MODES = ("fast", "full")
PASSTHROUGH = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}  # PIL format -> tar member extension
_PLAIN_MODES = ("RGB", "L", "RGBA", "LA")

ImageRef = "str | Path | bytes | Image.Image"  # a file, its bytes, or decoded pixels


class BadImage(Exception):
    """An input that cannot become a sample; the message is the reason written to ``skipped.jsonl``."""


@dataclass(frozen=True)
class Encoded:
    """Image bytes ready for a tar member: extension (``jpg``/``png``/``webp``), bytes, ``(H, W)``."""

    ext: str
    data: bytes
    size: tuple[int, int]
    passthrough: bool


@dataclass(frozen=True)
class EncodeOptions:
    """How to turn inputs into sample bytes (see the module docstring)."""

    image_format: str = "png"
    quality: int = 95
    max_size: int | None = None
    verify: str = "fast"
    passthrough: bool = True

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {self.verify!r}")


def encode_sample(ref: ImageRef, options: EncodeOptions) -> Encoded:
    """Bytes for one sample from a file path, encoded bytes or a PIL image; raises :class:`BadImage`."""
    if isinstance(ref, Image.Image):
        return _reencode(ref, "", options)
    data = _read(ref) if isinstance(ref, (str, Path)) else bytes(ref)
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as exc:
        raise BadImage(f"not a readable image ({type(exc).__name__}: {exc})") from None
    with image:
        ext = PASSTHROUGH.get(image.format or "")
        resize = options.max_size is not None and max(image.size) > options.max_size
        if options.passthrough and ext and image.mode in _PLAIN_MODES and not resize:
            _validate(image, data, full=options.verify == "full")
            return Encoded(ext, data, (image.height, image.width), True)
        if resize and image.format == "JPEG":  # DCT-domain downscale to >= the target: decode less
            scale = options.max_size / max(image.size)
            image.draft(image.mode, (round(image.width * scale), round(image.height * scale)))
        _load(image)
        return _reencode(image, image.format or "", options)


def _read(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadImage(f"unreadable ({exc.strerror or exc})") from None


def _validate(image: Image.Image, data: bytes, *, full: bool) -> None:
    """Cheap structural check; a file that fails it (or ``full``) must decode."""
    if full or not _ends_well(image.format or "", data):
        _load(image)


def _ends_well(fmt: str, data: bytes) -> bool:
    if fmt == "JPEG":  # 0xFFD9 appears only as the EOI marker (entropy data stuffs 0xFF with 0x00)
        return b"\xff\xd9" in data[-1024:]
    if fmt == "PNG":
        return b"IEND" in data[-64:]
    if fmt == "WEBP":
        return len(data) >= 8 + int.from_bytes(data[4:8], "little")
    return False


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except Exception as exc:
        raise BadImage(f"does not decode ({type(exc).__name__}: {exc})") from None


def _reencode(image: Image.Image, source_format: str, options: EncodeOptions) -> Encoded:
    image = _plain(image)
    if options.max_size is not None and max(image.size) > options.max_size:
        scale = options.max_size / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    as_jpeg = source_format == "JPEG" or (not source_format and options.image_format == "jpg")
    if as_jpeg and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    if as_jpeg:
        image.save(buffer, format="JPEG", quality=options.quality)
    else:
        image.save(buffer, format="PNG")
    return Encoded("jpg" if as_jpeg else "png", buffer.getvalue(), (image.height, image.width), False)


def _plain(image: Image.Image) -> Image.Image:
    """The image in a plain 8-bit mode: 16-bit/int/float grey -> ``L`` (scaled), the rest -> RGB(A)."""
    if image.mode in _PLAIN_MODES:
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        return Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
