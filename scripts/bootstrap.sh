#!/usr/bin/env bash
# Installs what `make run` and `make test` need and is missing: Debian packages
# (PostgreSQL 15 with pg_cron and pgTAP, pg_prove, the smoke test's tools) and the
# virtualenv. As root it uses apt-get; as an ordinary user, sudo if it may.
#   scripts/bootstrap.sh system | venv | promtool | senders | ha
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium and chromium-driver: the acknowledge page in a real browser (tests/test_page_browser.py)
PACKAGES=(postgresql-15 postgresql-client-15 postgresql-15-cron postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl python3-venv curl jq openssl xxd wrk
          chromium chromium-driver)

system() {
    install_missing "${PACKAGES[@]}"
}

# make ha: Debian's Patroni and etcd (docs/ha.md); their packages start no service we use
ha() {
    install_missing patroni etcd-server etcd-client
}

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "missing Debian packages: ${missing[*]}" >&2
            echo "install them once as root: apt-get install -y ${missing[*]}" >&2
            exit 1
        fi
    fi
    echo "installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv() {
    # /usr/bin/python3: an interpreter every user can read (not one under /root)
    if [ ! -x .venv/bin/python ]; then
        /usr/bin/python3 -m venv .venv
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    touch .venv/.installed
}

# promtool (tests check docs/prometheus-rules.yml with it): taken out of Debian's
# prometheus package into .local/bin, without installing the server or its service
promtool() {
    type -P promtool >/dev/null && return 0  # on PATH (type -P: not this function)
    [ -x .local/bin/promtool ] && return 0
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null) || {
        echo "could not download Debian's prometheus package for promtool" >&2
        rm -rf "$tmp"
        exit 1
    }
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    mkdir -p .local/bin
    mv "$tmp/x/usr/bin/promtool" .local/bin/promtool
    rm -rf "$tmp"
}

# the real alert senders (tests/test_intake_real_senders.py): Prometheus and Alertmanager taken
# out of Debian's prometheus and prometheus-alertmanager packages into .local/, like promtool:
# nothing installed, no service started, no root needed.
# Debian's alertmanager reads its built-in templates (default.tmpl, email.tmpl) from the
# directory /usr/share/prometheus/alertmanager (upstream embeds them) and refuses every config
# without them. That directory name is one constant in the binary: .local/bin/alertmanager is a
# copy with those 34 bytes replaced by "./" x 17, i.e. the directory it is started in, and the
# templates go to .local/share/alertmanager/ for the caller to put there (the tests do).
senders() {
    local need=()
    [ -x .local/bin/prometheus ] || need+=(prometheus)
    { [ -x .local/bin/alertmanager ] && [ -x .local/bin/amtool ] && [ -f .local/share/alertmanager/email.tmpl ]; } ||
        need+=(prometheus-alertmanager)
    [ ${#need[@]} -eq 0 ] && return 0
    local tmp p
    tmp=$(mktemp -d)
    for p in "${need[@]}"; do
        (cd "$tmp" && apt-get download -qq "$p" 2>/dev/null) || {
            echo "could not download Debian's $p package (run apt-get update once as root)" >&2
            rm -rf "$tmp"
            exit 1
        }
        dpkg-deb -x "$tmp"/"${p}"_*.deb "$tmp/x"
    done
    mkdir -p .local/bin .local/share/alertmanager
    if [ -x "$tmp/x/usr/bin/prometheus" ]; then
        mv "$tmp/x/usr/bin/prometheus" .local/bin/prometheus
    fi
    if [ -x "$tmp/x/usr/bin/prometheus-alertmanager" ]; then
        local am="$tmp/x/usr/bin/prometheus-alertmanager"
        # the bare constant only (followed by the next string in the table, a digit); the
        # longer ".../ui/" and ".../no-ui" strings are separate and stay as they are
        perl -0777 -pi -e 's{/usr/share/prometheus/alertmanager(?=\d)}{"./" x 17}e' "$am"
        if [ "$(grep -c -a '/usr/share/prometheus/alertmanager' "$am")" != 2 ]; then
            echo "unexpected prometheus-alertmanager binary: its template directory was not found once" >&2
            rm -rf "$tmp"
            exit 1
        fi
        cp "$tmp"/x/usr/share/prometheus/alertmanager/*.tmpl .local/share/alertmanager/
        mv "$am" .local/bin/alertmanager
        mv "$tmp/x/usr/bin/amtool" .local/bin/amtool
    fi
    rm -rf "$tmp"
}

"$@"
