"""Bytes → text for feed parsing: which encoding a feed body is really in.

The order of evidence is: a byte-order mark; a UTF-16/32 byte pattern; the HTTP charset; the XML
declaration; UTF-8 when the bytes are valid UTF-8; a small guess for undeclared legacy bytes.
Labels are checked against the bytes: a UTF-8 label on bytes that are not UTF-8 is skipped, a
single-byte legacy label (ISO-8859-1, windows-1252, ...) on bytes that are valid multi-byte UTF-8
loses to UTF-8, and "utf-16" declared on ASCII-compatible bytes without a BOM is ignored.
ISO-8859-1 and US-ASCII are read as windows-1252 and GB2312/GBK as GB18030 (their supersets, as
browsers do).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECL_ENCODING = re.compile(
    rb"""<\?xml(?=[\s?])[^>]{0,300}?encoding\s*=\s*["']?\s*([A-Za-z][A-Za-z0-9._:+-]{0,40})""", re.I
)
_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]{1,40})""", re.I)
_HIGH_RUN = re.compile(rb"[\x80-\xff]+")
_TAGS = re.compile(rb"<[^<>]*>")
_ASCII_LETTERS = re.compile(rb"[A-Za-z]")
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
}
_WIDE = ("utf-16", "utf-32")


@dataclass(slots=True)
class Decoded:
    data: bytes  # the document as UTF-8, BOM removed
    encoding: str  # the Python codec the body was read with
    notes: list[str] = field(default_factory=list)  # what was wrong with the declared encoding


def codec_name(label: str | None) -> str | None:
    """The Python codec for an encoding label, widened to its usual superset; None if unknown."""
    if not label:
        return None
    try:
        info = codecs.lookup(label.strip().lower())
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib, rot13 ...
        return None
    return _SUPERSETS.get(info.name, info.name)


def _is_single_byte(enc: str) -> bool:
    return enc.startswith(("cp12", "iso8859", "koi8", "mac-", "cp874", "cp437", "cp85"))


def _valid_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _wide_without_bom(body: bytes) -> str | None:
    head = body[:4]
    if len(head) < 4:
        return None
    if head[0] and not head[1] and not head[2] and not head[3]:
        return "utf-32-le"
    if not head[0] and not head[1] and not head[2] and head[3]:
        return "utf-32-be"
    sample = body[:256]
    even_nul = sample[0::2].count(0)
    odd_nul = sample[1::2].count(0)
    if odd_nul > len(sample) // 4 and not even_nul:
        return "utf-16-le"
    if even_nul > len(sample) // 4 and not odd_nul:
        return "utf-16-be"
    return None


def _script_share(text: str, lo: int, hi: int, *extra: tuple[int, int]) -> float:
    wide = [c for c in text if ord(c) > 0x7F]
    if not wide:
        return 0.0
    ranges = ((lo, hi), *extra)
    hits = sum(1 for c in wide if any(a <= ord(c) <= b for a, b in ranges))
    return hits / len(wide)


def guess_legacy(body: bytes) -> str:
    """A guess for bytes that are not UTF-8 and name no encoding, from the text between tags:
    Western (windows-1252) when non-ASCII bytes are the odd accented letter among ASCII words;
    Chinese (GB18030) when they pair up into CJK characters; Cyrillic (windows-1251) when they
    read as Cyrillic words. Good enough for alerts; not a general detector."""
    text = _TAGS.sub(b" ", body[:100_000])
    runs = [len(m) for m in _HIGH_RUN.findall(text)]
    high = sum(runs)
    if not high:
        return "cp1252"
    letters = len(_ASCII_LETTERS.findall(text))
    if high / (high + letters) < 0.3:
        return "cp1252"
    even = sum(1 for n in runs if n % 2 == 0) / len(runs)
    candidates = [("cp1251", 0x0400, 0x04FF, ((0x2010, 0x2040), (0xAB, 0xBB)))]
    if even >= 0.9:
        candidates.insert(0, ("gb18030", 0x4E00, 0x9FFF, ((0x3000, 0x303F), (0xFF00, 0xFFEF))))
    for enc, lo, hi, extra in candidates:
        decoded = text.decode(enc, "replace")
        if decoded.count("\ufffd") <= 3 and _script_share(decoded, lo, hi, *extra) >= 0.8:
            return enc
    return "cp1252"


def decode_body(body: bytes, content_type: str = "") -> Decoded:
    """Find the body's encoding and return it re-encoded as UTF-8 (unchanged when it was UTF-8)."""
    for bom, bom_enc in _BOMS:
        if body.startswith(bom):
            rest = body[len(bom) :]
            return _convert(rest, bom_enc, [], what=f"byte-order mark ({bom_enc})")
    wide = _wide_without_bom(body)
    if wide:
        return _convert(body, wide, [f"no byte-order mark; bytes look like {wide}"], what=wide)

    notes: list[str] = []
    labels = []
    m = _HTTP_CHARSET.search(content_type or "")
    if m:
        labels.append(("HTTP charset", m.group(1)))
    decl = _DECL_ENCODING.search(body, 0, 2048)
    if decl:
        labels.append(("XML declaration", decl.group(1).decode("ascii", "replace")))

    utf8: bool | None = None
    for source, label in labels:
        enc = codec_name(label)
        if enc is None:
            notes.append(f"{source} names unknown encoding {label!r}")
            continue
        if enc.startswith(_WIDE):
            notes.append(f"{source} says {label!r} but the bytes are ASCII-compatible; ignored")
            continue
        if utf8 is None:
            utf8 = _valid_utf8(body)
        if enc == "utf-8":
            if utf8:
                return Decoded(body, "utf-8", notes)
            notes.append(f"{source} says {label!r} but the bytes are not valid UTF-8")
            continue
        if utf8 and _HIGH_RUN.search(body) and (_is_single_byte(enc) or not _decodes(body, enc)):
            notes.append(f"{source} says {label!r} but the bytes are UTF-8; read as UTF-8")
            return Decoded(body, "utf-8", notes)
        return _convert(body, enc, notes, what=f"{source} ({label})")

    if utf8 is None:
        utf8 = _valid_utf8(body)
    if utf8:
        return Decoded(body, "utf-8", notes)
    if labels and any(codec_name(label) == "utf-8" for _, label in labels):
        # Labelled UTF-8 and nearly so: keep UTF-8 and replace the few bad bytes rather than
        # reading the whole document in some other encoding.
        bad = _utf8_errors(body)
        if bad <= max(3, len(_HIGH_RUN.findall(body)) // 20):
            notes.append(f"{bad} invalid UTF-8 byte sequence(s) replaced")
            return _convert(body, "utf-8", notes, what="UTF-8")
    enc = guess_legacy(body)
    notes.append(f"no usable encoding declared; guessed {enc}")
    return _convert(body, enc, notes, what=enc)


def _decodes(body: bytes, enc: str) -> bool:
    try:
        body.decode(enc)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _utf8_errors(body: bytes) -> int:
    """How many invalid UTF-8 sequences ``body`` has."""
    return body.decode("utf-8", "replace").count("\ufffd") - body.count(b"\xef\xbf\xbd")


def _convert(body: bytes, enc: str, notes: list[str], *, what: str) -> Decoded:
    try:
        text = body.decode(enc)
    except UnicodeDecodeError:
        text = body.decode(enc, "replace")
        notes.append(f"invalid bytes for {what} replaced")
    if enc == "utf-8" and not notes:
        return Decoded(body, enc, notes)
    return Decoded(text.encode("utf-8", "replace"), enc, notes)
