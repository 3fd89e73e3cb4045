"""Split failed checks into known (scripts/scim-check/known-failures.txt) and unknown ones.

usage: failures.py KNOWN_FILE CHECKER < failed-check-lines
Each input line is one failed check ("<title>: <first reason line>"). Prints each with
KNOWN/UNKNOWN; exits 1 if any is unknown.
"""

import sys


def main() -> int:
    checker = sys.argv[2]
    known = []
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, text = line.partition("|")
        if name.strip() == checker:
            known.append(text.strip())
    unknown = 0
    for failed in sys.stdin.read().splitlines():
        if not failed.strip():
            continue
        if any(k in failed for k in known):
            print(f"  KNOWN   {failed}")
        else:
            print(f"  UNKNOWN {failed}")
            unknown += 1
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
