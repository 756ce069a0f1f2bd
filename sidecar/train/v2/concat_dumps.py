"""Joins candidates_dump.ts outputs (PREFIX.u8 + PREFIX.json) into one, scans renumbered.

    /usr/bin/python3 concat_dumps.py OUT_PREFIX IN_PREFIX [IN_PREFIX ...]
"""

import json
import sys


def main():
    out, parts = sys.argv[1], sys.argv[2:]
    merged = None
    with open(out + ".u8", "wb") as data:
        for prefix in parts:
            meta = json.load(open(prefix + ".json"))
            with open(prefix + ".u8", "rb") as f:
                while chunk := f.read(1 << 24):
                    data.write(chunk)
            if merged is None:
                merged = {**meta, "scans": [], "entries": []}
            offset = len(merged["scans"])
            merged["scans"] += [{**s, "scan": s["scan"] + offset} for s in meta["scans"]]
            merged["entries"] += [{**e, "scan": e["scan"] + offset} for e in meta["entries"]]
    json.dump(merged, open(out + ".json", "w"))
    print(f"{out}: {len(merged['entries'])} patches from {len(merged['scans'])} studies")


if __name__ == "__main__":
    main()
