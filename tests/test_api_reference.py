"""docs/openapi.yaml is the one reference for endpoints, permissions and rate limits, and
docs/api.md's endpoint table explains it. Each check here compares one of them with the single
place the code declares the same thing, so neither can drift:

- the routes: the Flask app's url_map, methods included;
- a permission: the literal the endpoint's SQL function passes to ops.authorize (directly or
  through ops._api_begin) in db/schema.sql; the view names that function, and nothing else in
  the code decides who may; and, through the API, that a person holding only that permission gets
  past the check and one holding every other does not;
- the guard: the view's decorator (auth.signed, auth.signed_if_signature) or the kind the SQL
  function asks ops._integration_key for;
- a rate limit: the string the view passes to @limiter.limit (a constant of api/opsguard/limits.py)
  and its key function."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml
from flask_limiter.util import get_qualified_name, get_remote_address
from opsguard import limits
from opsguard.limits import limiter
from opsguard.views import incidents

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
SCHEMA_SQL = (ROOT / "db" / "schema.sql").read_text()
API_MD = (ROOT / "docs" / "api.md").read_text()
METHODS = ("get", "post", "put", "patch", "delete")
# what each key function counts a limit per, in the words of x-rate-limit's `key`
KEY_NAMES = {None: "address", get_remote_address: "address", limits.by_principal: "principal",
             incidents._per_action: "principal and action"}
GUARD_WRAPPERS = {"signed.<locals>.wrapper": "hmac-v1", "signed_if_signature.<locals>.wrapper": "hmac-v1-optional"}


def spec_operations() -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, item in OPENAPI["paths"].items()
            for method, op in item.items() if method in METHODS}


def _paths_of(rule) -> list[str]:
    """The spec's paths of one url_map rule: `<name>` is `{name}`; `<any(a, b):name>` is one path per value."""
    paths = [""]
    for part in re.split(r"(<[^>]+>)", rule.rule):
        m = re.fullmatch(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>", part)
        if m and m[1] == "any":
            paths = [p + value.strip().strip("'\"") for p in paths for value in m[2].split(",")]
        else:
            paths = [p + (f"{{{m[3]}}}" if m else part) for p in paths]
    return paths


def served_operations(app) -> dict[tuple[str, str], dict]:
    """The spec's operations the app serves (what it lacks is the first test's finding, not a KeyError here)."""
    routes = app_routes(app)
    return {key: op for key, op in spec_operations().items() if key in routes}


def app_routes(app) -> dict[tuple[str, str], str]:
    """(METHOD, spec path) -> endpoint, for every route the app serves (HEAD and OPTIONS are Flask's own)."""
    return {(method, path): rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in rule.methods - {"HEAD", "OPTIONS"} for path in _paths_of(rule)}


def _chain(view):
    while view is not None:
        yield view
        view = getattr(view, "__wrapped__", None)


def view_of(app, endpoint: str):
    """The view function as written, under its decorators."""
    return list(_chain(app.view_functions[endpoint]))[-1]


def guard_of(app, endpoint: str) -> str | None:
    names = {f.__code__.co_qualname for f in _chain(app.view_functions[endpoint])}
    guards = [g for name, g in GUARD_WRAPPERS.items() if name in names]
    return guards[0] if guards else None


def sql_bodies(view) -> list[str]:
    """The bodies (every overload) of the ops.api_* functions the view calls."""
    names = set(re.findall(r"ops\.(api_\w+)\(", inspect.getsource(view)))
    return [m[0] for name in names  # from CREATE FUNCTION to its closing dollar quote ($$ or $_$)
            for m in re.finditer(rf"^CREATE FUNCTION ops\.{name}\(.*?AS (\$\w*\$)$.*?^\1;", SCHEMA_SQL, re.M | re.S)]


def _literals_in_calls(body: str, callee: str) -> set[str]:
    return {lit for call in re.findall(rf"{callee}\(([^;]*)", body) for lit in re.findall(r"'([a-z_.0-9]+)'", call)}


def enforced_permissions(view) -> set[str]:
    return {p for body in sql_bodies(view) for p in _literals_in_calls(body, r"\b(?:authorize|_api_begin)") if "." in p}


def key_kinds(view) -> set[str]:
    """The kinds the view's SQL asks ops._integration_key(token, kind) for: the call's last argument."""
    return {k for body in sql_bodies(view) for k in re.findall(r"\b_integration_key\([^;]*?,\s*'(\w+)'\s*\)", body)}


def declared_limit(view) -> dict | None:
    decorated = list(limiter.limit_manager._decorated_limits.get(get_qualified_name(view), []))
    assert len(decorated) <= 1, f"{get_qualified_name(view)}: one limit per view is what the spec can say"
    if not decorated:
        return None
    return {"limit": decorated[0].limit_provider, "key": KEY_NAMES[decorated[0].key_function]}


def test_every_route_is_in_the_spec_and_the_spec_has_no_other(app):
    served, documented = set(app_routes(app)), set(spec_operations())
    assert not served - documented, f"served but not in docs/openapi.yaml: {sorted(served - documented)}"
    assert not documented - served, f"in docs/openapi.yaml but not served: {sorted(documented - served)}"


def test_x_permission_is_what_the_endpoint_sql_function_authorizes(app):
    routes, by_view = app_routes(app), {}
    for key, op in served_operations(app).items():
        view = view_of(app, routes[key])
        enforced = enforced_permissions(view)
        declared = {op.get("x-permission"), op.get("x-permission-for-detail")} - {None}
        assert "x-permission" in op, f"{key}: no x-permission (null for none)"
        assert declared <= enforced, f"{key}: the spec says {declared}, its SQL function authorizes {enforced}"
        by_view.setdefault(view, [set(), enforced])[0].update(declared)
    for view, (declared, enforced) in by_view.items():
        assert declared == enforced, f"{view.__name__}: the spec names {declared}, its SQL authorizes {enforced}"


# a body each signed operation accepts far enough to authorize: what it answers after that is not the point
BODIES = {("POST", "/ops/incidents"): {"incident_key": "GET /ref::x", "severity": "warning"},
          ("POST", "/ops/metrics/requests"): []}


def test_x_permission_is_what_the_endpoint_enforces(app, api, conn):
    """Through the API: a person holding only x-permission gets past the check, one holding every other
    permission gets 403 (ops-bot signs and names them in X-Ops-Actor)."""
    conn.execute("INSERT INTO ops.roles (name, description) VALUES ('just_it', 'test'), ('all_but_it', 'test')")
    conn.execute("SELECT ops.add_principal('holder', 'human', '{just_it}', 'test')")
    conn.execute("SELECT ops.add_principal('lacker', 'human', '{all_but_it}', 'test')")
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /ref::y', 'critical')").fetchone()[0]
    for (method, path), op in served_operations(app).items():
        if op["x-permission"] is None:
            continue
        conn.execute("DELETE FROM ops.role_permissions WHERE role IN ('just_it', 'all_but_it')")
        conn.execute("INSERT INTO ops.role_permissions (role, permission) SELECT r, name FROM ops.permissions, "
                     "LATERAL (SELECT CASE WHEN name = %s THEN 'just_it' ELSE 'all_but_it' END) AS x(r)",
                     (op["x-permission"],))
        target, body = path.format(incident_id=incident_id), BODIES.get((method, path))
        refused = api.call(method, target, body, actor="lacker", validate=False)
        assert refused.status_code == 403, f"{method} {path} without {op['x-permission']}: {refused.json}"
        allowed = api.call(method, target, body, actor="holder", validate=False)
        assert allowed.status_code != 403, f"{method} {path} with {op['x-permission']}: {allowed.json}"


def test_x_guard_is_the_views_decorator_or_the_key_kind_its_sql_function_checks(app):
    routes = app_routes(app)
    for key, op in served_operations(app).items():
        guard, view = op["x-guard"], view_of(app, routes[key])
        signature = guard if guard in GUARD_WRAPPERS.values() else None
        assert guard_of(app, routes[key]) == signature, f"{key}: x-guard {guard}, the view's decorator says otherwise"
        kinds = key_kinds(view)
        if guard.startswith("integration-key:"):
            assert kinds == {guard.partition(":")[2]}, f"{key}: x-guard {guard}, its SQL function checks keys {kinds}"
        else:
            assert not kinds, f"{key}: its SQL function checks integration keys {kinds}; x-guard says {guard}"
        assert op["x-permission"] is None or guard == "hmac-v1", f"{key}: a permission needs a signed principal"


def test_x_rate_limit_is_the_limit_the_view_declares(app):
    routes = app_routes(app)
    for key, op in served_operations(app).items():
        assert "x-rate-limit" in op, f"{key}: no x-rate-limit (null for none)"
        declared = declared_limit(view_of(app, routes[key]))
        assert op["x-rate-limit"] == declared, f"{key}: the spec says {op['x-rate-limit']}, the view {declared}"
    assert OPENAPI["info"]["x-failed-signature-limit"] == {"limit": limits.FAILED_SIGNATURES, "key": "address"}


def _norm(path: str) -> str:
    return re.sub(r"[<{][^>}]*[>}]", "{}", path)


def _operation(method: str, path: str) -> dict:
    ops = {(m, _norm(p)): op for (m, p), op in spec_operations().items()}
    assert (method, _norm(path)) in ops, f"docs/api.md names {method} {path}, which docs/openapi.yaml lacks"
    return ops[(method, _norm(path))]


def api_md_table() -> list[tuple[list[str], str, str, str]]:
    """(methods, path, permission cell, limit cell) of each row of docs/api.md's endpoint table."""
    rows = []
    for line in API_MD.split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and cells[0].startswith("`"):
            path = re.search(r" (/[^\s`]*)`", cells[0])[1]
            rows.append((re.findall(r"\b(GET|POST|PUT|PATCH|DELETE)\b", cells[0]), path, cells[1], cells[2]))
    return rows


def _limit_text(limit: dict | None) -> str:
    return "—" if limit is None else f"{limit['limit']}, per {limit['key']}"


def test_api_md_endpoint_table_agrees_with_the_spec():
    rows, listed = api_md_table(), set()
    for methods, path, permission, limit in rows:
        for method in methods:
            op = _operation(method, path)
            listed.add((method, _norm(path)))
            lead = re.match(r"`([a-z_]+\.[a-z_]+)`", permission)
            assert (lead and lead[1]) == (op["x-permission"] or None), (
                f"docs/api.md: {method} {path} needs {lead and lead[1]}, the spec says {op['x-permission']}")
            named = set(re.findall(r"`(?!ops\.)([a-z_]+\.[a-z_]+)`", permission))  # ops.* are functions
            allowed = {op["x-permission"], op.get("x-permission-for-detail")}
            assert named <= allowed, f"docs/api.md: {method} {path} names {named - allowed}, not the spec's"
            expected = _limit_text(op["x-rate-limit"])
            assert limit == expected or limit.startswith(expected + " ("), (
                f"docs/api.md: {method} {path} is limited to {limit!r}, the spec says {expected!r}")
    missing = {(m, _norm(p)) for m, p in spec_operations()} - listed
    assert not missing, f"docs/api.md's endpoint table lacks {sorted(missing)}"


@pytest.mark.parametrize("doc", ["docs/api.md", "README.md"])
def test_every_endpoint_a_doc_names_is_in_the_spec(doc):
    text = (ROOT / doc).read_text()
    for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^\s`?]*)", text):
        _operation(method, path)
