"""Decode legacy text files: detect the encoding, then decode strictly, block by block.

Detection follows LIBRARIES.md: BOM sniff -> strict ``utf-8`` -> strict ``gb18030`` (a superset of
GBK/GB2312; never decode as ``gbk``) -> ``chardet`` restricted to utf-8/gb18030/big5/utf-16.

Two refinements, each because the plain chain gets a real file wrong:

- UTF-16 without a BOM is valid UTF-8 (ASCII letters interleaved with NUL bytes), so a sample whose
  odd or even bytes are mostly NUL is treated as UTF-16 before the UTF-8 step.
- Every Big5 byte sequence is also valid GB18030 (Big5 lead/trail byte ranges sit inside GB18030's
  two-byte ranges), so a strict gb18030 success only wins when the decoded text looks like
  simplified Chinese (mostly GB2312 characters). Otherwise chardet decides between gb18030 and big5.

Decoding never replaces bytes: an undecodable byte is a ``UsageError`` naming the file, line and byte
offset and suggesting ``--encoding``.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from crmbridge.errors import UsageError

BLOCK = 1 << 20  # bytes decoded at a time: memory stays bounded whatever the file size
SAMPLE = 1 << 16  # bytes looked at for BOM-less UTF-16 and chardet
CHARDET_ENCODINGS = ["utf-8", "gb18030", "big5", "utf-16"]

_BOMS = [  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]

_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf8": "utf-8",
            "utf-8-bom": "utf-8-sig", "utf8-sig": "utf-8-sig", "utf16": "utf-16", "big-5": "big5",
            "cp950": "big5"}


@dataclass(frozen=True)
class Detected:
    """An encoding choice: codec name, BOM length to skip, and how it was found."""

    encoding: str
    bom: int
    how: str  # bom, utf-16-nul-pattern, strict, chardet, declared
    # strict on the first BLOCK only: ``decoded_text`` confirms the rest as it reads, raising
    # ``NotThatEncoding`` where the whole-file detection would have chosen otherwise
    tentative: bool = False


class NotThatEncoding(Exception):
    """A tentative encoding (``detect_encoding(path, whole=False)``) failed past the part it was checked
    on: detect again on the whole file and read the file anew."""


def normalize_encoding(name: str) -> str:
    """A user's encoding name as the codec we decode with (gbk and gb2312 become gb18030)."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    try:
        codecs.lookup(key)
    except LookupError:
        raise UsageError(f"unknown encoding '{name}'",
                         hint="use one of utf-8, utf-8-sig, utf-16, gb18030, big5") from None
    return key


def sniff_bom(head: bytes) -> tuple[str, int] | None:
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc if enc != "utf-8-sig" else "utf-8", len(bom)
    return None


def _nul_pattern(sample: bytes) -> str | None:
    """UTF-16 without BOM: mostly-ASCII text leaves NUL in every other byte."""
    n = len(sample) - len(sample) % 2
    if n < 8:
        return None
    even, odd = sample[0:n:2], sample[1:n:2]
    half = n // 2
    if odd.count(0) > 0.4 * half and even.count(0) < 0.05 * half:
        return "utf-16-le"
    if even.count(0) > 0.4 * half and odd.count(0) < 0.05 * half:
        return "utf-16-be"
    return None


def _decodes(path: Path, encoding: str, skip: int, blocks: int | None = None) -> bool:
    """Whether the file decodes strictly (its first ``blocks`` blocks only, if given and the file is longer)."""
    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    with open(path, "rb") as f:
        f.seek(skip)
        try:
            while block := f.read(BLOCK):
                dec.decode(block)
                if blocks is not None:
                    blocks -= 1
                    if not blocks:
                        return True
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _looks_simplified(path: Path) -> bool:
    """True when gb18030-decoded non-ASCII text is mostly GB2312 (common simplified) characters."""
    with open(path, "rb") as f:
        sample = f.read(SAMPLE)
    text = sample.decode("gb18030", errors="ignore")
    from collections import Counter

    wide = Counter(ch for ch in text if ord(ch) > 0x7F)
    if not wide:
        return True
    common = 0
    for ch, n in wide.items():  # each different character once
        try:
            ch.encode("gb2312")
            common += n
        except UnicodeEncodeError:
            pass
    return common >= 0.9 * sum(wide.values())


def _chardet(path: Path) -> str | None:
    import chardet

    with open(path, "rb") as f:
        sample = f.read(200_000)
    guess = chardet.detect(sample, include_encodings=CHARDET_ENCODINGS, no_match_encoding="utf-8")
    enc = (guess.get("encoding") or "").lower()
    return normalize_encoding(enc) if enc else None


def detect_encoding(path: Path, whole: bool = True) -> Detected:
    """Choose the encoding of ``path`` (see the module docstring for the order).

    ``whole=False``: a strict utf-8 or gb18030 success is judged on the first block only and returned
    ``tentative`` (the reader confirms the rest, so a file is decoded once instead of twice); where
    the first block decodes but a later one does not, the reader raises ``NotThatEncoding``."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE)
    bom = sniff_bom(head)
    if bom:
        return Detected(bom[0], bom[1], "bom")
    nul = _nul_pattern(head)
    if nul and _decodes(path, nul, 0):
        return Detected(nul, 0, "utf-16-nul-pattern")
    tentative = not whole and path.stat().st_size > BLOCK  # a file of one block is checked whole anyway
    first = 1 if tentative else None
    if _decodes(path, "utf-8", 0, first):
        return Detected("utf-8", 0, "strict", tentative)
    if _decodes(path, "gb18030", 0, first):
        if _looks_simplified(path):
            return Detected("gb18030", 0, "strict", tentative)
        if tentative and not _decodes(path, "gb18030", 0):
            return detect_encoding(path)
        guess = _chardet(path)
        if guess and guess not in ("utf-8", "gb18030") and _decodes(path, guess, 0):
            return Detected(guess, 0, "chardet")  # big5 (or BOM-less UTF-16) that gb18030 also accepts
        if guess == "utf-8":  # UTF-8 with a few bad bytes: show the first one rather than mojibake
            return Detected("utf-8", 0, "fallback")
        return Detected("gb18030", 0, "strict")
    guess = _chardet(path)
    if guess and guess not in ("utf-8", "gb18030") and _decodes(path, guess, 0):
        return Detected(guess, 0, "chardet")
    # Nothing decodes cleanly: decode as UTF-8 so the error names the first bad byte.
    return Detected("utf-8", 0, "fallback")


def declared(path: Path, name: str) -> Detected:
    """An encoding given in config or ``--encoding``; a BOM of that family is still skipped."""
    enc = normalize_encoding(name)
    with open(path, "rb") as f:
        head = f.read(4)
    bom = sniff_bom(head)
    if enc in ("utf-8", "utf-8-sig"):
        return Detected("utf-8", 3 if head.startswith(codecs.BOM_UTF8) else 0, "declared")
    if enc in ("utf-16", "utf-32") and bom and bom[0].startswith(enc):
        return Detected(bom[0], bom[1], "declared")
    if enc in ("utf-16", "utf-32"):  # no BOM: the codec's default is little endian on every platform we run
        return Detected(enc + "-le", 0, "declared")
    if bom and bom[0] == enc:
        return Detected(enc, bom[1], "declared")
    return Detected(enc, 0, "declared")


def decoded_text(path: Path, det: Detected, shown_path: str, hasher: "hashlib._Hash | None" = None,
                 tried: str = "") -> Iterator[str]:
    """Yield the file's text in blocks, decoded strictly; feed every raw byte to ``hasher``.

    An undecodable byte raises ``UsageError`` with the file, 1-based line and byte offset.
    """
    dec = codecs.getincrementaldecoder(det.encoding)(errors="strict")
    offset = 0
    with open(path, "rb") as f:
        head = f.read(det.bom)
        if hasher is not None:
            hasher.update(head)
        offset = det.bom
        while True:
            block = f.read(BLOCK)
            if hasher is not None:
                hasher.update(block)
            pending = dec.getstate()[0]
            try:
                text = dec.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                if det.tentative:
                    raise NotThatEncoding(det.encoding) from None
                base = offset - len(pending)
                raise _decode_error(exc, pending + block, base, _lines_before(path, det, base), det,
                                    shown_path, tried) from None
            offset += len(block)
            if text:
                yield text
            if not block:
                return


def _lines_before(path: Path, det: Detected, end: int) -> int:
    """The line ends in the text of the file's bytes before ``end`` (which decode): counted again only
    for an error's line number, not in every block as it is read (0.1 CPU-s per million rows of the benchmark)."""
    dec = codecs.getincrementaldecoder(det.encoding)(errors="strict")
    lines = 0
    with open(path, "rb") as f:
        f.seek(det.bom)
        left = end - det.bom
        while left > 0 and (block := f.read(min(BLOCK, left))):
            left -= len(block)
            lines += dec.decode(block).count("\n")
    return lines + dec.decode(b"", final=True).count("\n")


def _decode_error(exc: UnicodeDecodeError, data: bytes, base: int, lines: int, det: Detected,
                  shown_path: str, tried: str) -> UsageError:
    good = data[: exc.start].decode(det.encoding, errors="replace")
    line = lines + good.count("\n") + 1
    bad = data[exc.start: min(exc.end, exc.start + 4)].hex(" ")
    what = tried or det.encoding
    return UsageError(
        f"{shown_path}: line {line}, byte offset {base + exc.start}: bytes {bad} are not valid {what}",
        hint="pass the file's real encoding with --encoding (e.g. gb18030, big5, utf-16) "
             "or set `encoding:` on the source in crmbridge.yml",
    )
