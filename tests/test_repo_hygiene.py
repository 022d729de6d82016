"""Code, tests, docs and database comments cite only what is in the repository: no section of an
outside contract (SPEC followed by a section sign or number, or its file name) and no task or
helper name (h followed by a number in the teens). A reader
has the rule itself or a link to the doc in docs/ that states it. Applied migrations are history
and are never edited, so db/migrations is left out of the file check; what they leave in the
database is checked through the comments of a migrated database instead."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"SPEC ?§|SPEC \d|SPEC\.md|\bh1\d\b")
SKIPPED = ("db/migrations/", ".venv/", ".local/")


def outside_citations(name: str, text: str) -> list[str]:
    return [f"{name}:{n}: {line.strip()[:120]}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]


def test_the_pattern_catches_what_it_must_and_spares_the_rest():
    spec, helper = "SPEC", "h1"  # split so that this file passes its own check
    caught = [f"({spec} §3)", f"({spec} 11)", f"see {spec}.md", f"{helper}8's attacks", f"by {helper}6", f"{spec}§6"]
    spared = ["OPENAPI = yaml", "SPEC = yaml", "sha1 h100 h9 th12", "RFC 9110 §5.5", "ach19"]
    assert [s for s in caught if not OUTSIDE.search(s)] == []
    assert [s for s in spared if OUTSIDE.search(s)] == []


def test_tracked_files_cite_only_the_repository():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    found = []
    for name in names.decode().split("\0"):
        path = ROOT / name
        if not name or name.startswith(SKIPPED) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += outside_citations(name, text)
    assert found == [], "cite the rule or a doc in docs/ instead:\n" + "\n".join(found)


def test_database_comments_cite_only_the_repository(conn):
    rows = conn.execute(
        """SELECT pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
             FROM pg_catalog.pg_description d
            WHERE d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid = 'ops'::regnamespace
               OR (d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid IN
                     (SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = 'ops'::regnamespace))
               OR (d.classoid = 'pg_catalog.pg_proc'::regclass AND d.objoid IN
                     (SELECT oid FROM pg_catalog.pg_proc WHERE pronamespace = 'ops'::regnamespace))
               OR (d.classoid = 'pg_catalog.pg_type'::regclass AND d.objoid IN
                     (SELECT oid FROM pg_catalog.pg_type WHERE typnamespace = 'ops'::regnamespace))""").fetchall()
    assert len(rows) > 4  # the check reads real comments
    found = [line for obj, text in rows for line in outside_citations(obj, text)]
    assert found == [], "cite the rule or a doc in docs/ instead:\n" + "\n".join(found)


# A pgTAP description is all a failure prints: one that opens with "... " leans on the assertion
# before it and says nothing by itself, so every description states the behaviour it pins.
CONTINUED = re.compile(r"'\.\.\. ")


def test_pgtap_descriptions_stand_on_their_own():
    found = [f"tests/sql/{path.name}:{n}: {line.strip()[:120]}"
             for path in sorted((ROOT / "tests" / "sql").glob("*.sql"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if CONTINUED.search(line)]
    assert found == [], "say what the assertion pins instead of continuing the one before:\n" + "\n".join(found)


# A current function body says why it is as it is; which migration did what is git log's job.
# A migration number is 00NN standing alone (not the tail of a decimal such as 0.0001 or of a
# SQLSTATE such as P0002).
MIGRATION_NUMBER = re.compile(r"(?<![.\w])00\d\d\b")


def test_current_bodies_and_comments_tell_no_migration_history():
    assert MIGRATION_NUMBER.search("as 0027") and MIGRATION_NUMBER.search("(0038)")
    assert not MIGRATION_NUMBER.search("99.9999 % SLO: 0.0001") and not MIGRATION_NUMBER.search("ERRCODE = 'P0002'")
    schema = (ROOT / "db" / "schema.sql").read_text(encoding="utf-8")
    found = [f"db/schema.sql:{n}: {line.strip()[:120]}" for n, line in enumerate(schema.splitlines(), 1)
             if MIGRATION_NUMBER.search(line)]
    assert found == [], "write why, not which migration (git log keeps that):\n" + "\n".join(found)
