"""Every element of DICOM files as pydicom reads them, for the de-identification tests.

Usage: _deid_dump.py FILE... ; prints one JSON object: {path: {"elements": [[path, tag, vr, value,
items]], "meta": {tag: value}, "pixel": sha256 of the Pixel Data value or null, "preamble": hex}}
or {path: {"error": "..."}} for a file pydicom cannot read. Element paths name sequence items:
"00081140[0].00081155". Bytes are shown as "bytes:<length>:<sha256 prefix>".
"""
import hashlib
import json
import sys
import warnings

import pydicom

warnings.simplefilter("ignore")


def show(elem):
    if elem.VR == "SQ":
        return None
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return "bytes:%d:%s" % (len(value), hashlib.sha256(value).hexdigest()[:16])
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join("" if v is None else str(v) for v in value)
    return "" if value is None else str(value)


def walk(ds, prefix, out):
    for elem in ds:
        if prefix == "" and elem.tag == 0x7FE00010:
            continue
        path = "%s%08X" % (prefix, elem.tag)
        try:
            value = show(elem)
        except Exception as error:  # a value pydicom cannot convert
            value = "error:%r" % error
        items = len(elem.value) if elem.VR == "SQ" else None
        out.append([path, "%08X" % elem.tag, elem.VR, value, items])
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                walk(item, "%s[%d]." % (path, i), out)


result = {}
for name in sys.argv[1:]:
    try:
        ds = pydicom.dcmread(name)
        out = []
        walk(ds, "", out)
        pixel = ds.get((0x7FE0, 0x0010))
        result[name] = {
            "elements": out,
            "meta": {"%08X" % e.tag: str(e.value) for e in ds.file_meta},
            "pixel": hashlib.sha256(pixel.value).hexdigest() if pixel is not None else None,
            "preamble": (ds.preamble or b"").hex(),
        }
    except Exception as error:
        result[name] = {"error": repr(error)}
print(json.dumps(result))
