"""Reading an uploaded spreadsheet (SPEC §8): a hostile file is refused before it is parsed (`check_container`:
entries, declared sizes, compression ratio, XML document type declarations), then its first sheet is streamed
row by row (`XlsxRows`, memory not growing with the rows; legacy .xls through calamine).

Used by every import (filings, IP and domain reports) and by the marked file that answers a refused one.
"""

from __future__ import annotations

import codecs
import functools
import re
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from defusedxml import DTDForbidden
from defusedxml.ElementTree import fromstring as safe_xml
from flask import current_app
from openpyxl.utils import get_column_letter
from python_calamine import CalamineWorkbook

# --- hostile files: refused before any parsing -------------------------------------------------------

class ImportRefused(Exception):
    """The file as a whole cannot be read (not a spreadsheet, too big, a bomb, formulas)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


ZIP_MAGIC, OLE_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def container_kind(path: Path) -> str:
    """'xls' for an OLE file (legacy Excel), else 'xlsx' (for a file `check_container` already let through)."""
    with path.open("rb") as handle:
        return "xls" if handle.read(8).startswith(OLE_MAGIC) else "xlsx"


def check_container(path: Path) -> str:
    """'xlsx' or 'xls' once the file passed the bounds (entries, declared sizes, ratio, DTDs);
    ImportRefused otherwise. Reads at most the declared sizes, which are bounded first."""
    config = current_app.config
    head = path.open("rb").read(8)
    if head.startswith(OLE_MAGIC):
        if path.stat().st_size > config["IMPORT_MAX_UNCOMPRESSED_BYTES"]:
            raise ImportRefused("文件过大。")
        return "xls"
    if not head.startswith(ZIP_MAGIC):
        raise ImportRefused("这不是 Excel 文件（.xlsx 或 .xls）。请用导入模板填写后上传。")
    try:
        archive = zipfile.ZipFile(path)
        entries = archive.infolist()
    except zipfile.BadZipFile as error:
        raise ImportRefused("文件已损坏，无法读取。") from error
    with archive:
        total = sum(entry.file_size for entry in entries)
        if len(entries) > 500 or total > config["IMPORT_MAX_UNCOMPRESSED_BYTES"]:
            raise ImportRefused(f"文件解压后过大（{total // (1024 * 1024)} MB，上限 "
                                f"{config['IMPORT_MAX_UNCOMPRESSED_BYTES'] // (1024 * 1024)} MB），已拒绝。")
        for entry in entries:
            if entry.compress_size and entry.file_size / entry.compress_size > 200 and entry.file_size > 1_000_000:
                raise ImportRefused(f"文件中的 {entry.filename} 压缩比异常（疑似压缩炸弹），已拒绝。")
        if "xl/workbook.xml" not in {entry.filename for entry in entries}:
            raise ImportRefused("这不是 Excel 工作簿（.xlsx）。")
        for entry in entries:
            if entry.filename.endswith((".xml", ".rels")):
                check_xml_part(archive, entry.filename)
    return "xlsx"


UNREADABLE_PART = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


def _forbid_dtd(*_args: object) -> None:
    raise DTDForbidden(None, None, None)


def check_xml_part(archive: zipfile.ZipFile, name: str) -> None:
    """The whole part through expat, 1 MB at a time, with a document type declaration refused the moment the
    parser meets it — before any entity is declared, let alone expanded — wherever it stands (after a comment
    of any length) and in any encoding XML allows (expat reads the byte-order mark and the declaration).
    Malformed XML is refused too, naming the part. The sheet and the shared strings are then cut out by
    regular expressions that expand no entity; the small parts read as trees go through defusedxml."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _forbid_dtd
    parser.EntityDeclHandler = _forbid_dtd
    try:
        with archive.open(name) as part:
            while chunk := part.read(XlsxRows.CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except DTDForbidden as error:
        raise ImportRefused(f"文件中的 {name} 含有 XML 文档类型声明（可能是实体炸弹），已拒绝。") from error
    except expat.ExpatError as error:
        raise ImportRefused(f"文件中的 {name} 不是有效的 XML（第 {error.lineno} 行），文件已损坏。") from error
    except UNREADABLE_PART as error:
        raise ImportRefused(f"文件中的 {name} 无法解压，文件已损坏。") from error


# --- reading ----------------------------------------------------------------------------------------------

def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_rows(path: Path, kind: str = "xlsx") -> tuple[list[str], Iterator[tuple[int, list[str]]], int]:
    """The header, the data rows as (row number, cells as text), and how many the sheet declares.

    .xlsx is streamed (`XlsxRows`: memory does not grow with the rows); legacy .xls, a binary format that
    cannot be streamed, is read by calamine."""
    if kind == "xls":
        return _xls_rows(path)
    reader = XlsxRows(path)
    if reader.declared_rows - 1 > current_app.config["IMPORT_MAX_ROWS"]:
        raise ImportRefused(_too_many(reader.declared_rows - 1))
    rows = iter(reader)
    first = next(rows, (1, []))
    return first[1], _bounded(rows), max(0, reader.declared_rows - 1)


def _too_many(count: int) -> str:
    return f"文件有 {count:,} 行，超过上限 {current_app.config['IMPORT_MAX_ROWS']:,} 行；请分批导入。"


def _bounded(rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    """Stops a file whose sheet did not declare its size at the configured maximum."""
    limit = current_app.config["IMPORT_MAX_ROWS"]
    for count, row in enumerate(rows, start=1):
        if count > limit:
            raise ImportRefused(_too_many(count))
        yield row


def _xls_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]], int]:
    try:
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
    except Exception as error:  # calamine reports any unreadable file the same way
        raise ImportRefused("无法读取该文件的第一个工作表。") from error
    count = max(0, sheet.height - 1)
    if count > current_app.config["IMPORT_MAX_ROWS"]:
        raise ImportRefused(_too_many(count))
    rows = sheet.iter_rows()
    header = [_text(v) for v in next(rows, [])]
    return header, ((number, [_text(v) for v in row]) for number, row in enumerate(rows, start=2)), count


SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#: a row's start tag, or a cell: `<c r="B7" t="…">` holding an inline `<t>`, a `<v>` or richer markup (the `r` may
#: stand anywhere among the attributes, or be missing: the cell is then the one after the previous one)
CELL_RE = re.compile(r'(<row\b[^>]*>)|<c\b(?: r="([A-Z]+)([0-9]+)")?([^>]*?)'
                     r"(?:/>|>(?:<is><t[^>]*>([^<]*)</t></is>|<v>([^<]*)</v>|(.*?))</c>)", re.DOTALL)
REF_RE = re.compile(r"([A-Z]+)([0-9]+)")
TEXT_RE = re.compile(r"<t\b[^>]*>(.*?)</t>", re.DOTALL)
INLINE_PHONETIC_RE = re.compile(r"<rPh\b.*?</rPh>", re.DOTALL)
XML_REFERENCE_RE = re.compile(r"&(?:#([0-9]+)|#x([0-9A-Fa-f]+)|(lt|gt|amp|quot|apos));")
XML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
#: Excel's own escape of a character in a text (ST_Xstring): `_x000D_` for a carriage return, `_x005F_` for "_"
OOXML_ESCAPE_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
SHARED_RE = re.compile(rb"<si>(.*?)</si>|<si/>", re.DOTALL)
SHARED_TEXT_RE = re.compile(rb"<t\b[^>]*>(.*?)</t>", re.DOTALL)
PHONETIC_RE = re.compile(rb"<rPh\b.*?</rPh>", re.DOTALL)
MAX_COLUMN = 16_384  # XFD, the last column of a worksheet
MAX_COLUMNS_READ = 64  # the template has 21; a value further right is refused rather than carried along
MAX_PENDING = 8 << 20  # XML held while looking for the end of a cell or a shared string (Excel: 32,767 characters)


def _reference(match: re.Match[str]) -> str:
    number, hexadecimal, name = match.groups()
    if name:
        return XML_ENTITIES[name]
    code = int(number) if number else int(hexadecimal, 16)
    return chr(code) if code <= 0x10FFFF else match.group(0)


def _unescaped(match: re.Match[str]) -> str:
    """The character of an `_xHHHH_` escape — only one XML can carry (never NUL, a lone surrogate or U+FFFF,
    which the database would refuse): any other stays as written."""
    code = int(match.group(1), 16)
    allowed = code in (0x9, 0xA, 0xD) or 0x20 <= code < 0xD800 or 0xE000 <= code <= 0xFFFD
    return chr(code) if allowed else match.group(0)


def xml_text_lines(raw: str) -> str:
    """XML's end-of-line handling, one text node at a time (rich runs each on their own): CRLF and CR become LF."""
    return raw.replace("\r\n", "\n").replace("\r", "\n") if "\r" in raw else raw


def xml_text(raw: str) -> str:
    """A text as stored in the XML → as the spreadsheet shows it, as an XML parser and Excel read it: line ends
    normalised (a raw CR or CRLF is a LF; an escaped `&#13;` stays a CR), the five entities and the character
    references (XML's, not HTML's: `&#128;` is U+0080), then Excel's `_xHHHH_` escapes. The parts were checked
    well-formed (`check_xml_part`), so no other `&` occurs."""
    raw = xml_text_lines(raw)
    if "&" in raw:
        raw = XML_REFERENCE_RE.sub(_reference, raw)
    if "_x" in raw:
        raw = OOXML_ESCAPE_RE.sub(_unescaped, raw)
    return raw


def _attribute(attributes: str, name: str) -> str:
    """The value of `name="…"` in a tag's attribute text ("" when absent)."""
    start = attributes.find(f' {name}="')
    if start < 0:
        return ""
    start += len(name) + 3
    return attributes[start:attributes.find('"', start)]


@functools.cache
def _column_index(letters: str) -> int:
    index = 0
    for letter in letters[:4]:  # four letters are already past XFD: the caller refuses the cell
        index = index * 26 + ord(letter) - 64
    return index - 1


def _cut(pending: Any, searched_from: int, *markers: Any) -> int:
    """Where the complete items of `pending` end: after the last end marker (searched in the new text only).
    Text without one is refused once it exceeds MAX_PENDING (no cell or shared string is that long)."""
    end = 0
    for marker in markers:
        found = pending.rfind(marker, searched_from)
        if found >= 0:
            end = max(end, found + len(marker))
    if not end and len(pending) > MAX_PENDING:
        raise ImportRefused("文件中有超长的单元格或文字（超过 Excel 单元格的上限），文件已损坏。")
    return end


def _require_utf8(head: bytes, name: str) -> None:
    """The parts cut by regular expressions must be UTF-8, as every spreadsheet program writes them."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise ImportRefused(f"文件中的 {name} 不是 UTF-8 编码的文本，文件已损坏。")


class SharedStrings:
    """The shared-strings table as one buffer of UTF-8 bytes (XML-escaped, as stored) and an array of where
    each text ends, each text decoded when a cell uses it: about the size of the texts themselves, not the
    5–10 times a list of Python strings takes (131 MB of shared strings took 726 MB that way)."""

    def __init__(self, archive: zipfile.ZipFile, name: str | None) -> None:
        self.data = bytearray()
        self.ends = array("L")
        if name is not None:
            self._read(archive, name)

    def _read(self, archive: zipfile.ZipFile, name: str) -> None:
        pending, searched = b"", 0
        with archive.open(name) as part:
            while True:
                chunk = part.read(XlsxRows.CHUNK)
                if not pending and not self.ends:
                    _require_utf8(chunk[:4096], name)
                pending += chunk
                end = len(pending) if not chunk else _cut(pending, searched, b"</si>", b"<si/>")
                for item in SHARED_RE.finditer(pending, 0, end):
                    self._add(item.group(1) or b"")
                pending = pending[end:]
                searched = max(0, len(pending) - 5)
                if not chunk:
                    return

    def _add(self, item: bytes) -> None:
        if b"<rPh" in item:
            item = PHONETIC_RE.sub(b"", item)
        texts = SHARED_TEXT_RE.findall(item)
        if len(texts) > 1 and b"\r" in item:  # each run's line ends on their own: a CR ending one stays a LF
            texts = [text.replace(b"\r\n", b"\n").replace(b"\r", b"\n") for text in texts]
        self.data += texts[0] if len(texts) == 1 else b"".join(texts)
        self.ends.append(len(self.data))

    def __len__(self) -> int:
        return len(self.ends)

    def text(self, index: str, cell: str) -> str:
        """The text a cell's `<v>` points to; a malformed index or text is refused naming the cell."""
        if not index.isdigit():
            raise ImportRefused(f"单元格 {cell} 的共享字符串编号“{index[:20]}”无效，文件已损坏。")
        position = int(index)
        if position >= len(self.ends):
            raise ImportRefused(f"单元格 {cell} 引用的第 {position:,} 个共享字符串不存在"
                                f"（文件只有 {len(self.ends):,} 个），文件已损坏。")
        try:
            value = self.data[self.ends[position - 1] if position else 0:self.ends[position]].decode()
        except UnicodeDecodeError as error:
            raise ImportRefused(f"单元格 {cell} 的文字不是有效的 UTF-8 文本，文件已损坏。") from error
        return xml_text(value)


class XlsxRows:
    """The first worksheet of an .xlsx, row by row: about a microsecond a cell and memory bounded by one
    chunk of XML (plus the shared strings table, about the size of the file's distinct texts). Only values are
    read; a cell holding a formula, a malformed reference or index, rows out of order are refused, naming the
    cell."""

    CHUNK = 1 << 20

    def __init__(self, path: Path) -> None:
        self.archive = zipfile.ZipFile(path)
        self.sheet = self._first_sheet()
        names = self.archive.namelist()
        try:
            self.shared = SharedStrings(self.archive, "xl/sharedStrings.xml" if "xl/sharedStrings.xml" in names
                                        else None)
            with self.archive.open(self.sheet) as part:
                head = part.read(4096)
        except UNREADABLE_PART as error:
            raise ImportRefused("文件已损坏，无法解压。") from error
        _require_utf8(head, self.sheet)
        found = re.search(rb'<dimension ref="[A-Z]+[0-9]+:[A-Z]+([0-9]+)"', head)
        self.declared_rows = int(found.group(1)) if found else 0  # openpyxl's write-only files do not say

    def _first_sheet(self) -> str:
        try:
            workbook = safe_xml(self.archive.read("xl/workbook.xml"), forbid_dtd=True)
            rels = safe_xml(self.archive.read("xl/_rels/workbook.xml.rels"), forbid_dtd=True)
            first = workbook.find(f"{{{SHEET_NS}}}sheets/{{{SHEET_NS}}}sheet")
            rel_id = first.get(f"{{{REL_NS}}}id") if first is not None else None
            target = next(r.get("Target") for r in rels if r.get("Id") == rel_id)
        except (KeyError, StopIteration, AttributeError, ParseError, *UNREADABLE_PART) as error:
            raise ImportRefused("无法找到该文件的第一个工作表。") from error
        name = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        if name not in self.archive.namelist():
            raise ImportRefused("无法找到该文件的第一个工作表。")
        return name

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        try:
            yield from self._rows()
        except UNREADABLE_PART as error:
            raise ImportRefused(f"文件中的 {self.sheet} 无法解压，文件已损坏。") from error

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        """Cells are cut out of the decompressed stream by one regular expression (C speed): spreadsheet XML
        is machine-written — `<c r="B7" t="…">` holding `<v>` or an inline `<t>`; anything richer (rich
        text runs) takes `_value`. A cell's reference gives its row and column; a cell without one (allowed,
        and written by some programs) is the next column of its row, a row without `r` the next row."""
        pending, searched, row, number = "", 0, [], 0
        counted, column, last = 0, -1, ""  # the row and column (or letters) a cell without a reference goes on from
        decoder = codecs.getincrementaldecoder("utf-8")()  # a character may straddle two chunks
        with self.archive.open(self.sheet) as part:
            while True:
                chunk = part.read(self.CHUNK)
                try:
                    pending += decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    raise ImportRefused("工作表不是有效的 UTF-8 文本，文件已损坏。") from error
                end = len(pending) if not chunk else _cut(pending, searched, "</c>", "<row")
                if end and chunk and pending.startswith("<row", end - 4):
                    end -= 4  # up to the start of the next row: its cells are still to come
                for row_tag, letters, digits, rest, inline, plain, other in CELL_RE.findall(pending, 0, end):
                    if row_tag:
                        counted, column, last = _row_number(row_tag, counted), -1, ""
                        continue
                    if letters:
                        last = letters  # its column is the count a following cell without a reference goes on from
                    else:  # no reference, or not as the first attribute
                        letters, digits, column = _position(rest, counted, _column_index(last) if last else column)
                        last = ""
                    if int(digits) != number:
                        if int(digits) < number:
                            raise ImportRefused(f"单元格 {letters[:16]}{digits} 出现在第 {number} 行之后，文件已损坏。")
                        if row:
                            yield number, row
                        row, number = [], int(digits)
                    if inline or plain or other:
                        self._place(row, letters, digits, self._cell(letters + digits, rest, inline, plain, other))
                pending = pending[end:]
                searched = max(0, len(pending) - 4)
                if not chunk:
                    break
        if row:
            yield number, row

    def _cell(self, cell: str, rest: str, inline: str, plain: str, other: str) -> str:
        if other:
            if "<f" in other:  # a value could be anything once the formula is recalculated
                raise ImportRefused(f"单元格 {cell[:20]} 含有公式；请只填写数值或文字。")
            value = self._value(cell, _attribute(rest, "t"), other)
        elif 't="s"' in rest:
            return self.shared.text(plain, cell).strip() if plain else ""
        elif inline:
            value = xml_text(inline)
        else:
            value = _number(plain, rest) if plain.endswith(".0") else xml_text(plain)
        return value.strip()

    @staticmethod
    def _place(row: list[str], letters: str, digits: str, value: str) -> None:
        position = _column_index(letters)
        if position >= MAX_COLUMN:
            raise ImportRefused(f"单元格引用 {letters[:16]}{digits} 无效（超出工作表的最后一列 XFD），文件已损坏。")
        if position >= MAX_COLUMNS_READ:
            if value:
                raise ImportRefused(f"单元格 {letters}{digits} 超出导入模板的范围（最多 {MAX_COLUMNS_READ} 列）；"
                                    "请只在模板的各列中填写。")
            return
        if position == len(row):
            row.append(value)
        else:
            row.extend([""] * (position + 1 - len(row)))
            row[position] = value

    def _value(self, cell: str, kind: str, content: str) -> str:
        """A cell with rich text runs or other markup: every text run joined."""
        if kind == "inlineStr":
            if "<rPh" in content:  # the phonetic reading (Japanese furigana) is not part of the value
                content = INLINE_PHONETIC_RE.sub("", content)
            return xml_text("".join(xml_text_lines(text) for text in TEXT_RE.findall(content)))
        start = content.find("<v>")
        value = content[start + 3:content.find("</v>", start)] if start >= 0 else ""
        if kind == "s" and value:
            return self.shared.text(value, cell)
        return value[:-2] if kind in ("", "n") and value.endswith(".0") else xml_text(value)


def _number(plain: str, attributes: str) -> str:
    """A number's `<v>` without the ".0" a writer adds to a whole number (`12.0` → `12`); a text (`t="str"`)
    ending in ".0" is kept."""
    return plain[:-2] if _attribute(attributes, "t") in ("", "n") else xml_text(plain)


def _row_number(tag: str, previous: int) -> int:
    """A `<row>`'s number: its `r`, or the one after the previous row when it has none."""
    number = _attribute(tag, "r")
    if not number:
        return previous + 1
    if not number.isdigit():
        raise ImportRefused(f"行号“{number[:16]}”无效，文件已损坏。")
    return int(number)


def _position(attributes: str, row: int, previous_column: int) -> tuple[str, str, int]:
    """A cell's column letters, row digits and column index: from its `r`, or the next column of its row."""
    reference = _attribute(attributes, "r")
    if not reference:
        column = previous_column + 1
        return get_column_letter(min(column, MAX_COLUMN - 1) + 1), str(row), column
    found = REF_RE.fullmatch(reference)
    if not found:
        raise ImportRefused(f"单元格引用“{reference[:16]}”无效，文件已损坏。")
    letters, digits = found.groups()
    return letters, digits, _column_index(letters)
