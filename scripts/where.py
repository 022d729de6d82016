"""Which migrations define a function: the history `db/schema.sql` does not show.

    make where FN=ops.escalation_tick        # or FN=escalation_tick
    python scripts/where.py ops.escalation_tick [--dir db/migrations]

Prints one line per migration that creates, replaces, drops or alters (search_path, owner) the function (rollbacks left
out: they restore what an earlier line shows), oldest first. The last `defines` line holds the
body now in force (db/schema.sql shows it); a change copies that body into a new migration, and its rollback
restores that body verbatim (db/README.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent.parent / "db" / "migrations"


def definitions(name: str, directory: Path = MIGRATIONS) -> list[tuple[str, str]]:
    """(migration file name, 'defines' | 'drops' | 'alters') for each forward migration that touches ops.<name>."""
    bare = name.removeprefix("ops.")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", bare):
        raise ValueError(f"not a function name: {name!r} (e.g. ops.escalation_tick)")
    defines = re.compile(rf"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+ops\.{bare}\s*\(", re.IGNORECASE)
    alters = re.compile(rf"ALTER\s+FUNCTION\s+ops\.{bare}\s*\(", re.IGNORECASE)
    drops = re.compile(rf"DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?ops\.{bare}\b(?!_)", re.IGNORECASE)
    found = []
    for path in sorted(directory.glob("*.sql")):
        if path.name.endswith(".rollback.sql"):
            continue
        text = path.read_text()
        if defines.search(text):
            found.append((path.name, "defines"))
        elif drops.search(text):
            found.append((path.name, "drops"))
        elif alters.search(text):
            found.append((path.name, "alters"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", help="ops.<name> or <name>")
    parser.add_argument("--dir", type=Path, default=MIGRATIONS)
    args = parser.parse_args(argv)
    try:
        rows = definitions(args.function, args.dir)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if not rows:
        print(f"no migration in {args.dir} defines ops.{args.function.removeprefix('ops.')}", file=sys.stderr)
        return 1
    for name, what in rows:
        print(f"{name}\t{what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
