"""Environment variables (docs/configuration.md): each is declared once in api/opsguard/settings.py,
the docs table is those declarations, no module reads one from os.environ itself, and every
process refuses a value it cannot use at start, naming the variable, instead of reading it as
something else (a rate limit switched off by a typo) or failing later with a bare traceback."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import localpg
import pytest
from conftest import SECRET
from opsguard import dispatcher, settings
from opsguard.app import create_app

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
PREFIXES = ("OPS_", "SLACK_", "RATELIMIT_")
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


# --- the docs and the code agree ------------------------------------------------------------

def doc_table() -> list[str]:
    return [line for line in DOC.read_text().splitlines() if line.startswith("|")]


def test_the_docs_table_names_every_variable_with_its_default() -> None:
    documented = {}
    for line in doc_table()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        documented[cells[0].strip("`")] = cells[3]
    declared = {s.name: s.default_text() for s in settings.SETTINGS}
    assert documented == declared, "docs/configuration.md: print the table again (the command is in that file)"


def test_the_docs_table_is_what_its_command_prints() -> None:
    [command] = re.findall(r"```bash\n(.*?)\n```", DOC.read_text(), flags=re.S)
    printed = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == doc_table()


def test_every_variable_the_docs_name_is_declared() -> None:
    prefixes = "|".join(PREFIXES)
    pattern = re.compile(rf"\b(?:{prefixes})[A-Z0-9_]*[A-Z0-9]\b")
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        unknown = set(pattern.findall(doc.read_text())) - set(settings.BY_NAME)
        assert not unknown, f"{doc.name} names variables no process reads: {sorted(unknown)}"


def _environ_reads(tree: ast.AST) -> list[tuple[int, str | None]]:
    """(line, name) of each read of os.environ / os.getenv; name None when it is not a literal
    (a computed key, or os.environ handed on whole)."""
    reads, seen = [], set()
    for node in ast.walk(tree):
        environ, key = None, None
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            environ, key = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and (
                _is_environ(node.func.value) and node.func.attr in ("get", "pop", "setdefault")
                or _is_os(node.func.value) and node.func.attr == "getenv"):
            environ, key = node.func.value, node.args[0]
        elif isinstance(node, ast.Compare) and _is_environ(node.comparators[0]):
            environ, key = node.comparators[0], node.left
        else:
            continue
        seen.add(id(environ))
        reads.append((node.lineno, key.value if isinstance(key, ast.Constant) else None))
    reads += [(node.lineno, None) for node in ast.walk(tree) if _is_environ(node) and id(node) not in seen]
    return reads


def _is_os(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "os"


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _is_os(node.value)


def direct_reads(root: Path) -> list[str]:
    """Every place under root that reads a declared or OPS_/SLACK_/RATELIMIT_ variable from the
    environment itself; under api/ any use of os.environ outside settings.py counts, since a
    computed key (a loop over names) hides which variable it reads."""
    found = []
    for path in sorted([*root.glob("api/**/*.py"), *root.glob("scripts/**/*.py")]):
        if path.name == "settings.py" and path.parent.name == "opsguard":
            continue
        in_api = path.relative_to(root).parts[0] == "api"
        for line, name in _environ_reads(ast.parse(path.read_text(), str(path))):
            declared = name is not None and (name in settings.BY_NAME or name.startswith(PREFIXES))
            if declared or (in_api and name is None):
                found.append(f"{path.relative_to(root)}:{line} {name or 'os.environ'}")
    return sorted(set(found))


def test_no_module_reads_these_variables_from_the_environment_itself() -> None:
    assert direct_reads(ROOT) == [], "ask opsguard.settings (load or value) instead"


def test_the_check_finds_a_direct_read(tmp_path) -> None:
    """The scan above would pass by finding nothing at all: here it must find each kind of read."""
    (tmp_path / "api").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "api" / "x.py").write_text(
        "import os\na = os.environ.get('OPS_THREADS', '8')\nb = {k: os.environ[k] for k in ('X',)}\n")
    (tmp_path / "scripts" / "y.py").write_text(
        "import os\nc = os.getenv('SLACK_SIGNING_SECRET')\nd = 'RATELIMIT_ENABLED' in os.environ\n"
        "e = {**os.environ, 'PGAPPNAME': 'bench'}\nf = os.environ.get('OPSGUARD_BENCH_PORT')\n")
    assert direct_reads(tmp_path) == ["api/x.py:2 OPS_THREADS", "api/x.py:3 os.environ",
                                      "scripts/y.py:2 SLACK_SIGNING_SECRET", "scripts/y.py:3 RATELIMIT_ENABLED"]


# --- the API (create_app) --------------------------------------------------------------------

@pytest.fixture
def api_env(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("OPS_HMAC_SECRET", SECRET)
    return monkeypatch


@pytest.mark.parametrize(("key", "value", "message"), [
    ("RATELIMIT_ENABLED", "maybe", "RATELIMIT_ENABLED is 1/true/yes/on or 0/false/no/off .unset: on., not 'maybe'"),
    ("RATELIMIT_ENABLED", "", "RATELIMIT_ENABLED is 1/true/yes/on or 0/false/no/off .unset: on., not ''"),
    ("OPS_BENCH_ENDPOINTS", "y", "OPS_BENCH_ENDPOINTS is 1/true/yes/on or 0/false/no/off .unset: off., not 'y'"),
    ("OPS_MAX_BODY_BYTES", "1M", "OPS_MAX_BODY_BYTES must be a whole number from 1 to 1073741824, not '1M'"),
    ("OPS_MAX_BODY_BYTES", "0", "OPS_MAX_BODY_BYTES must be a whole number from 1 to 1073741824, not '0'"),
])
def test_the_api_refuses_a_value_it_cannot_use_and_names_it(api_env, key, value, message) -> None:
    api_env.setenv(key, value)
    with pytest.raises(RuntimeError, match=f"^opsguard API: {message}$"):
        create_app()


def test_the_api_reads_the_environment_and_a_test_config_wins(db_url, api_env) -> None:
    api_env.setenv("DATABASE_URL", db_url)
    api_env.setenv("OPS_MAX_BODY_BYTES", "2048")
    api_env.setenv("RATELIMIT_ENABLED", " Off ")
    api_env.setenv("OPS_DB_POOL_MAX", "eight")  # overridden below: never read
    app = create_app({"OPS_DB_POOL_MAX": 3, "OPS_DB_ROLE": ""})
    try:
        assert app.config["MAX_CONTENT_LENGTH"] == 2048 and app.config["RATELIMIT_ENABLED"] is False
        assert app.extensions["opsguard_pool"].max_size == 3
        with app.extensions["opsguard_pool"].connection() as conn:
            assert conn.execute("SELECT current_user = session_user").fetchone()[0], "an empty role keeps the login"
    finally:
        app.extensions["opsguard_pool"].close()


# --- the command-line processes and the server ------------------------------------------------

@pytest.mark.parametrize(("key", "value", "message"), [
    ("OPS_DISPATCH_BATCH", "2.5", "OPS_DISPATCH_BATCH must be a whole number from 1 to 1000, not '2.5'"),
    ("OPS_DISPATCH_THREADS", "many", "OPS_DISPATCH_THREADS must be a whole number 1 or more, not 'many'"),
    ("OPS_DISPATCH_TIMEOUT_S", "nan", "OPS_DISPATCH_TIMEOUT_S must be a number above 0, not 'nan'"),
    ("OPS_DISPATCH_POLL_S", "inf", "OPS_DISPATCH_POLL_S must be a number above 0, not 'inf'"),
])
def test_the_dispatcher_refuses_a_value_it_cannot_use_and_names_it(monkeypatch, capsys, key, value, message) -> None:
    monkeypatch.setenv(key, value)
    assert dispatcher.main(["--dsn", UNREACHABLE]) == 2
    assert capsys.readouterr().err.strip() == f"opsguard dispatcher: {message}"


def test_the_dispatcher_takes_its_variables_and_a_flag_wins(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("OPS_DISPATCH_BATCH", "7")
    monkeypatch.setenv("OPS_DISPATCH_TIMEOUT_S", "2.5")
    monkeypatch.setenv("OPS_DISPATCH_DB_ROLE", "")
    options = dispatcher.options_from(["--batch", "9"])
    assert (options.dsn, options.batch, options.timeout_s, options.poll_s, options.db_role) == (UNREACHABLE, 9, 2.5, 5.0, "")
    assert dispatcher.options_from([]).batch == 7


def test_the_local_cluster_refuses_a_port_it_cannot_use(monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPSGUARD_PGPORT", "54,329")
    assert localpg.main(["url"]) == 2
    assert capsys.readouterr().err.strip() == "opsguard localpg: OPSGUARD_PGPORT must be a whole number from 1 to 65535, " \
                                              "not '54,329'"


def gunicorn(env: dict[str, str]) -> subprocess.CompletedProcess:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    full = {**os.environ, "DATABASE_URL": UNREACHABLE, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
            "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": "", **env}
    return subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"),
                           "opsguard.app:create_app()"], env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("OPS_THREADS", "eight", "OPS_THREADS must be a whole number from 1 to 1000, not 'eight'"),
    ("OPS_READ_BUFFER_MB", "lots", "OPS_READ_BUFFER_MB must be a number above 0, at most 1048576, not 'lots'"),
    ("OPS_HEADER_TIMEOUT_S", "10s", "OPS_HEADER_TIMEOUT_S must be a number above 0, at most 3600, not '10s'"),
    ("RATELIMIT_ENABLED", "maybe", "RATELIMIT_ENABLED is 1/true/yes/on or 0/false/no/off (unset: on), not 'maybe'"),
])
def test_the_server_does_not_start_on_a_value_it_cannot_use(key, value, message) -> None:
    """A server setting stops gunicorn before it listens; an app setting stops the worker from
    booting, and gunicorn with it."""
    result = gunicorn({key: value})
    assert result.returncode != 0
    assert f"opsguard API: {message}" in result.stderr


def test_the_server_config_reads_its_variables() -> None:
    def conf(**env: str) -> list:
        code = "import runpy; c = runpy.run_path('api/gunicorn.conf.py'); print([c['bind'], c['threads'], c['accesslog']])"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "PORT"))}
        return ast.literal_eval(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**full, **env},
                                               capture_output=True, text=True, check=True).stdout)

    assert conf() == ["127.0.0.1:3000", 8, "-"]
    assert conf(PORT="3110", OPS_THREADS="4", OPS_ACCESS_LOG="") == ["127.0.0.1:3110", 4, None]
    assert conf(OPS_BIND="unix:/tmp/ops.sock", PORT="3110")[0] == "unix:/tmp/ops.sock"


# --- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "raw", "value"), [
    ("OPS_DB_POOL_MAX", " 8 ", 8), ("OPS_DB_POOL_MAX", 3.0, 3), ("OPS_DB_TIMEOUT_S", "0.1", 0.1),
    ("OPS_READ_BUFFER_MB", str(1 / 1024), 1 / 1024), ("OPS_HMAC_BODY_ONLY", " ON ", True),
    ("OPS_HMAC_BODY_ONLY", False, False), ("RATELIMIT_ENABLED", "Yes", True), ("RATELIMIT_ENABLED", "0", False),
    ("OPS_ACCESS_LOG", "", ""), ("OPS_DB_ROLE", "", ""),
])
def test_a_value_is_parsed(name, raw, value) -> None:
    assert settings.BY_NAME[name].parse(raw, "test") == value


@pytest.mark.parametrize(("name", "raw"), [
    ("OPS_DB_POOL_MAX", True), ("OPS_DB_POOL_MAX", 2.5), ("OPS_DB_POOL_MAX", "1e1"), ("OPS_DB_POOL_MAX", None),
    ("OPS_DB_TIMEOUT_S", "0.09"), ("OPS_DISPATCH_TIMEOUT_S", "0"), ("OPS_DISPATCH_THREADS", "0"),
    ("OPS_HMAC_BODY_ONLY", "1"), ("OPS_HMAC_BODY_ONLY", "true"), ("PORT", "65536"), ("PORT", "3000\x00"),
    ("OPS_HMAC_REQUIRE_TIMESTAMP", ""),
])
def test_a_value_is_refused_by_name(name, raw) -> None:
    with pytest.raises(settings.SettingError, match=f"^opsguard test: {name} "):
        settings.BY_NAME[name].parse(raw, "test")


def test_a_refusal_never_shows_a_secret(api_env) -> None:
    """Secrets are text, never refused by value, so no settings message carries one; a malformed
    key list is refused without echoing it."""
    assert all(s.kind == "secret" for s in settings.SETTINGS if "SECRET" in s.name or s.name == "OPS_HMAC_KEYS")
    api_env.setenv("OPS_HMAC_KEYS", "pipeline")
    with pytest.raises(ValueError, match="^OPS_HMAC_KEYS entries are name=secret$"):
        create_app()
