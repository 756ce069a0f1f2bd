"""pydicom's reading of the character-set-affected string values of DICOM files, for charset_test.ts.

Usage: /usr/bin/python3 _pydicom_strings.py OUT_DIR

Reads every file of pydicom's charset corpus; writes into OUT_DIR files in the character sets the
corpus lacks (small Secondary Capture instances, written here byte by byte so that the values are
exactly the bytes encoded from known Unicode text) and fresh-UID copies of the corpus files.
Prints JSON:
  {"files": {name: {"path", "charset", "values": {tag path: [VR, values]}, "error"?, "intended"?}}}
where a tag path is "00100010" or "00321064/1/00100010", PN values are lists of component groups
(trailing empty groups dropped, as pydicom does) and "intended" is the Unicode text the bytes were
made from.
"""
import glob
import json
import os
import struct
import sys
import uuid
import warnings

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CORPUS = os.path.join(os.path.dirname(pydicom.__file__), "data", "charset_files")
CHARSET_VRS = ("PN", "LO", "SH", "ST", "LT", "UT", "UC")
E = b"\x1b"


def values(elem):
    v = elem.value
    if v is None or v == "":
        return []
    vals = list(v) if isinstance(v, MultiValue) else [v]
    if elem.VR == "PN":
        return [list(p.components) if p is not None else [] for p in vals]
    return [str(x) for x in vals]


def strings(ds, prefix=""):
    out = {}
    for elem in ds:
        if elem.tag.group == 2:
            continue
        path = f"{prefix}{elem.tag:08X}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                out.update(strings(item, f"{path}/{i + 1}/"))
        elif elem.VR in CHARSET_VRS:
            out[path] = [elem.VR, values(elem)]
    return out


def read(path):
    entry = {"path": path}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
            ds.decode()
            cs = ds.get("SpecificCharacterSet", "")
            entry["charset"] = list(cs) if isinstance(cs, MultiValue) else cs
            entry["values"] = strings(ds)
        entry["warnings"] = [str(w.message) for w in caught]
    except Exception as e:  # pydicom cannot read it: the test skips it, with this reason
        entry["error"] = f"{type(e).__name__}: {e}"
    return entry


def g1(seq, text, codec):
    """Text in a set designated by an escape sequence (G1 sets: the high bytes)."""
    return E + seq + text.encode(codec)


def jis0212_only():
    """A kanji in JIS X 0212 but not JIS X 0208."""
    for cp in range(0x4E00, 0x9FA0):
        c = chr(cp)
        try:
            c.encode("iso2022_jp")
            continue
        except UnicodeEncodeError:
            pass
        try:
            if c.encode("iso2022_jp_2").startswith(E + b"$(D"):
                return c
        except UnicodeEncodeError:
            pass
    raise RuntimeError("no JIS X 0212 kanji")


def kanji_with_byte(byte):
    """A JIS X 0208 kanji one of whose two bytes is `byte` (a delimiter in ASCII)."""
    for cp in range(0x4E00, 0x9FA0):
        try:
            b = chr(cp).encode("iso2022_jp")
        except UnicodeEncodeError:
            continue
        if len(b) == 8 and byte in b[3:5]:
            return chr(cp)
    raise RuntimeError("no such kanji")


def synthetic():
    """(file name, Specific Character Set, [(tag, VR, raw bytes, intended values)])."""
    x212 = jis0212_only()
    k5c = kanji_with_byte(0x5C)
    k3d = kanji_with_byte(0x3D)
    jp = lambda s: s.encode("iso2022_jp")  # ESC $ B … ESC ( B
    jp2 = lambda s: s.encode("iso2022_jp_2")  # ESC $ ( D … ESC ( B
    single = [
        ("latin2", "ISO_IR 101", "iso8859_2", "Łukasiewicz^Wąs", "Zażółć gęślą jaźń"),
        ("latin3", "ISO_IR 109", "iso8859_3", "Ħaġar^Ġużeppi", "Ĉu ĝi ŝanĝiĝas? ĥ ĵ ŭ"),
        ("latin4", "ISO_IR 110", "iso8859_4", "Ķēniņš^Ģirts", "Ūdrija ŗ ļ ŧ"),
        ("latin5", "ISO_IR 148", "iso8859_9", "Şahin^Gülşen", "İstanbul Ağrı ığ"),
        ("thai", "ISO_IR 166", "tis_620", "สมชาย^ใจดี", "โรงพยาบาล"),
        ("katakana", "ISO_IR 13", "shift_jis", "ﾔﾏﾀﾞ^ﾀﾛｳ", "ｼﾝﾀﾞﾝ"),
        ("latin9", "ISO_IR 203", "iso8859_15", "Œlschläger^Žofie", "Prix 100 € Šš Žž"),
        ("misspelled", "ISO IR 101", "iso8859_2", "Łódź^Wąsik", "Gdańsk"),
        ("gbk", "GBK", "gbk", "Wang^XiaoDong=王^小东", "朱镕基"),
        ("utf8", "ISO_IR 192", "utf-8", "Müller^Zoë=山田^太郎", "Ærøskøbing ✓ 😀"),
    ]
    cases = []
    for name, charset, codec, pn, lo in single:
        cases.append((name, charset, [
            (0x00100010, "PN", pn.encode(codec), [pn.split("=")]),
            (0x00081030, "LO", lo.encode(codec), [lo]),
            (0x00080080, "LO", (lo + "\\" + lo).encode(codec), [lo, lo]),
        ]))
    cases += [
        ("iso2022_latin2_cyrillic", ["ISO 2022 IR 6", "ISO 2022 IR 101", "ISO 2022 IR 144"], [
            (0x00100010, "PN", g1(b"-B", "Łukasiewicz", "iso8859_2") + b"^" +
             g1(b"-L", "Иван", "iso8859_5"), [["Łukasiewicz^Иван"]]),
            (0x00081030, "LO", g1(b"-B", "Kraków", "iso8859_2") + b"\\" +
             g1(b"-L", "Москва", "iso8859_5"), ["Kraków", "Москва"]),
        ]),
        # Delimiters return G1 to Latin-1: the bytes after them are Latin-1 again, not Greek.
        ("iso2022_latin1_greek", ["ISO 2022 IR 100", "ISO 2022 IR 126"], [
            (0x00100010, "PN", "Dupré^Élise=".encode("latin_1") +
             g1(b"-F", "Παπαδόπουλος", "iso8859_7") + "^Élise".encode("latin_1"),
             [["Dupré^Élise", "Παπαδόπουλος^Élise"]]),
            (0x00081030, "LO", "Café ".encode("latin_1") + g1(b"-F", "Αθήνα", "iso8859_7") +
             "\\Zürich".encode("latin_1"), ["Café Αθήνα", "Zürich"]),
        ]),
        ("iso2022_hebrew_arabic", ["ISO 2022 IR 6", "ISO 2022 IR 138", "ISO 2022 IR 127"], [
            (0x00100010, "PN", g1(b"-H", "שרון", "iso8859_8") + b"^" +
             g1(b"-G", "لنزار", "iso8859_6"), [["שרון^لنزار"]]),
            (0x00104000, "LT", g1(b"-H", "שלום", "iso8859_8") + b"\r\n" +
             g1(b"-G", "مرحبا", "iso8859_6") + b"\r\nplain \\ text",
             ["שלום\r\nمرحبا\r\nplain \\ text"]),
        ]),
        ("iso2022_turkish_thai", ["ISO 2022 IR 6", "ISO 2022 IR 148", "ISO 2022 IR 166"], [
            (0x00100010, "PN", g1(b"-M", "Şahin", "iso8859_9") + b"^" +
             g1(b"-T", "สมชาย", "tis_620"), [["Şahin^สมชาย"]]),
            (0x00081030, "LO", g1(b"-M", "Şişli", "iso8859_9") + b"\\" +
             g1(b"-T", "กรุงเทพ", "tis_620"), ["Şişli", "กรุงเทพ"]),
        ]),
        ("iso2022_latin9", ["ISO 2022 IR 6", "ISO 2022 IR 203"], [
            (0x00081030, "LO", b"Prix " + g1(b"-b", "100 €", "iso8859_15"), ["Prix 100 €"]),
        ]),
        ("iso2022_katakana", ["ISO 2022 IR 6", "ISO 2022 IR 13"], [
            (0x00100010, "PN", b"ABC^" + E + b")I" + "ｱｲｳ".encode("shift_jis"), [["ABC^ｱｲｳ"]]),
        ]),
        ("iso2022_jis0212", ["", "ISO 2022 IR 87", "ISO 2022 IR 159"], [
            (0x00100010, "PN", b"Yamada^Tarou=" + jp("山田") + b"^" + jp2(x212) + jp("子"),
             [["Yamada^Tarou", "山田^" + x212 + "子"]]),
            # In JIS X 0208, 0x5C and 0x3D are also bytes of characters, not delimiters.
            (0x00104000, "LT", jp(k5c + "と" + k3d) + b"\r\n" + jp("表"),
             [k5c + "と" + k3d + "\r\n表"]),
            (0x00081030, "LO", jp(k3d + "山"), [k3d + "山"]),
        ]),
        ("iso2022_jis_delimiter_bytes", ["", "ISO 2022 IR 87"], [
            (0x00100010, "PN", b"Yamada^Tarou=" + jp(k3d) + b"^" + jp(k5c),
             [["Yamada^Tarou", k3d + "^" + k5c]]),
        ]),
        ("iso2022_gb2312", ["", "ISO 2022 IR 58"], [
            (0x00100010, "PN", b"Zhang^San=" + E + b"$)A" + "张".encode("gb2312") + b"^" + E +
             b"$)A" + "三".encode("gb2312"), [["Zhang^San", "张^三"]]),
        ]),
        ("iso2022_korean_g1", ["", "ISO 2022 IR 149"], [
            (0x00100010, "PN", b"Hong^Gildong=" + E + b"$)C" + "洪".encode("euc_kr") + b"^" + E +
             b"$)C" + "吉洞".encode("euc_kr") + b"=" + E + b"$)C" + "홍".encode("euc_kr") + b"^" +
             E + b"$)C" + "길동".encode("euc_kr"), [["Hong^Gildong", "洪^吉洞", "홍^길동"]]),
            (0x00104000, "LT", E + b"$)C" + "첫 줄".encode("euc_kr") + b"\r\n" + E + b"$)C" +
             "둘째 줄".encode("euc_kr"), ["첫 줄\r\n둘째 줄"]),
        ]),
        ("unknown_charset", "ISO_IR 999", [
            (0x00081030, "LO", "Café".encode("latin_1"), ["Café"]),
        ]),
        # Bytes a set does not define: U+FFFD, and the rest still read.
        ("invalid_utf8", "ISO_IR 192", [
            (0x00081030, "LO", b"Bad \xff byte \xe2\x82", ["Bad \ufffd byte \ufffd"]),
        ]),
        ("invalid_escape", ["", "ISO 2022 IR 87"], [
            (0x00081030, "LO", b"A" + E + b"$)Z" + b"\xa1B" + E + b"(", ["A\ufffd\xa1B\ufffd"]),
        ]),
        ("invalid_thai", "ISO_IR 166", [
            (0x00081030, "LO", "ก".encode("tis_620") + b"\xfc", ["ก\ufffd"]),
        ]),
    ]
    return cases


LONG_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT")


def element(tag, vr, value):
    """One Explicit VR Little Endian element with these exact value bytes (padded to even)."""
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in LONG_VRS:
        head += b"\0\0" + struct.pack("<I", len(value))
    else:
        head += struct.pack("<H", len(value))
    return head + value


def write_instance(path, charset, elements):
    """A 2 x 2 Secondary Capture instance of `elements` [(tag, VR, bytes)], fresh UIDs."""
    sop_class = "1.2.840.10008.5.1.4.1.1.7"
    sop = generate_uid()
    cs = "\\".join(charset) if isinstance(charset, list) else charset
    base = [
        (0x00080005, "CS", cs.encode()),
        (0x00080016, "UI", sop_class.encode()),
        (0x00080018, "UI", sop.encode()),
        (0x00080060, "CS", b"OT"),
        (0x00100020, "LO", ("CS" + uuid.uuid4().hex[:12]).encode()),
        (0x0020000D, "UI", generate_uid().encode()),
        (0x0020000E, "UI", generate_uid().encode()),
        (0x00200013, "IS", b"1"),
        (0x00280002, "US", struct.pack("<H", 1)),
        (0x00280004, "CS", b"MONOCHROME2"),
        (0x00280010, "US", struct.pack("<H", 2)),
        (0x00280011, "US", struct.pack("<H", 2)),
        (0x00280100, "US", struct.pack("<H", 8)),
        (0x00280101, "US", struct.pack("<H", 8)),
        (0x00280102, "US", struct.pack("<H", 7)),
        (0x00280103, "US", struct.pack("<H", 0)),
        (0x7FE00010, "OB", bytes([0, 64, 128, 255])),
    ]
    by_tag = {tag: (tag, vr, value) for tag, vr, value in base}
    for tag, vr, value in elements:
        by_tag[tag] = (tag, vr, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "2.25.1"
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta)
    body = b"".join(element(*by_tag[t]) for t in sorted(by_tag))
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + fp.getvalue() + body)


def fresh_uids(ds):
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(ds, kw, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def main():
    out_dir = sys.argv[1]
    files = {}
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.dcm"))):
        name = os.path.basename(path)
        files[name] = read(path)
        ds = pydicom.dcmread(path)
        if "SOPInstanceUID" in ds:
            fresh_uids(ds)
            ds.save_as(os.path.join(out_dir, name))
            # The copy keeps every other value's bytes: pydicom reads the same strings from it.
            if read(os.path.join(out_dir, name)).get("values") == files[name].get("values"):
                files[name]["fresh"] = os.path.join(out_dir, name)
    for name, charset, elements in synthetic():
        path = os.path.join(out_dir, f"{name}.dcm")
        write_instance(path, charset, [(tag, vr, raw) for tag, vr, raw, _ in elements])
        intended = {f"{tag:08X}": [vr, want] for tag, vr, _, want in elements}
        entry = read(path)
        entry["intended"] = intended
        entry["fresh"] = path
        files[f"{name}.dcm"] = entry
    print(json.dumps({"pydicom": pydicom.__version__, "files": files}, ensure_ascii=False))


main()
