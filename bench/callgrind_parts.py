#!/usr/bin/env python3
"""callgrind_parts.py ON OFF REPORTS TITLE PART...: instructions a report
that the broker's loop thread and each named function in it (inclusive)
took, in two callgrind runs side by side (the audit log on and off).

The loop's thread is the first thread: its callgrind file ends -01. Every
function is listed (--threshold=100): at the default only those making up
99 % of the total are, and a small part would read as 0. The
first row is the loop less SHA-256: under valgrind the threads run one at
a time, so the loop takes hashes a worker thread would take beside it.
Used by loop_instructions.sh and fanout_instructions.sh.
"""
import re
import subprocess
import sys


def counts(path, parts, reports):
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path + "-01"],
                          capture_output=True, text=True, check=True).stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) .*[?:]+(\w+) \[", line)
        if m and m.group(2) in parts and m.group(2) not in found:
            found[m.group(2)] = int(m.group(1).replace(",", "")) / reports
    return found


def main():
    on_path, off_path, reports, title = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    parts = ["cv_broker_run", "cv_sha256_parts"] + sys.argv[5:]
    on, off = counts(on_path, parts, reports), counts(off_path, parts, reports)
    print(title)
    rows = [("the loop, less SHA-256",
             lambda c: c.get("cv_broker_run", 0) - c.get("cv_sha256_parts", 0))]
    rows += [(part, lambda c, part=part: c.get(part, 0)) for part in parts]
    for label, get in rows:
        print("  %-28s %10.0f %10.0f" % (label, get(on), get(off)))


main()
