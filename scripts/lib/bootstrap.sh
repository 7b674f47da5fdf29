# Idempotent setup shared by scripts/run and scripts/test: system packages, the pinned npm
# packages, and the Python venv. Sourced, not executed. Each step does nothing when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

say() { printf '\033[1m[wa-sidecar]\033[0m %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ensure_system_packages PKG... : installs the Debian packages whose files are missing.
ensure_system_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        case "$pkg" in
            chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
            php-cli) command -v php >/dev/null || missing+=(php-cli) ;;
            php-laravel-framework) [ -d /usr/share/php/Illuminate/Http ] || missing+=(php-laravel-framework) ;;
            npm) command -v npm >/dev/null || missing+=(npm) ;;
            python3-venv) python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv) ;;
            # The test suite runs its own mariadbd (tests/support/mariadb.py), never the service.
            mariadb-server) { [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null; } || missing+=(mariadb-server) ;;
            mariadb-client) command -v mariadb >/dev/null || missing+=(mariadb-client) ;;
            # For promtool (the tests check ops/prometheus/alerts.yml); its server never starts.
            prometheus) command -v promtool >/dev/null || missing+=(prometheus) ;;
            *) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing system packages: ${missing[*]}. Install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fi
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    without_service_starts apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# without_service_starts CMD... : runs CMD with every service start denied, through the
# policy-rc.d hook that invoke-rc.d and deb-systemd-invoke consult (exit 101 = forbidden).
# Installing mariadb-server thus starts no system mariadb: without it, its postinst runs
# /etc/init.d/mariadb start when there is no systemd (a fresh CI container) and fails the
# install when that start fails. An existing policy-rc.d is put back afterwards, whatever
# happens; ours is removed. Runs in a subshell so that its EXIT trap is its own.
without_service_starts() (
    local policy=/usr/sbin/policy-rc.d saved="" ours=0
    restore() {
        if [ -n "$saved" ]; then
            mv -f "$saved" "$policy"
        elif [ "$ours" -eq 1 ]; then
            rm -f "$policy"
        fi
    }
    # What a run killed by SIGKILL left behind: the saved original, or ours alone.
    if [ -e "$policy.wa-sidecar-saved" ] || [ -L "$policy.wa-sidecar-saved" ]; then
        mv -f "$policy.wa-sidecar-saved" "$policy"
    elif grep -qs 'Written by wa-sidecar' "$policy"; then
        rm -f "$policy"
    fi
    trap restore EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [ -e "$policy" ] || [ -L "$policy" ]; then
        cp -a "$policy" "$policy.wa-sidecar-saved"
        saved="$policy.wa-sidecar-saved"
    fi
    ours=1
    printf '#!/bin/sh\n# Written by wa-sidecar scripts/lib/bootstrap.sh for one apt-get install.\nexit 101\n' \
        > "$policy.wa-sidecar-new"
    chmod 755 "$policy.wa-sidecar-new"
    mv -f "$policy.wa-sidecar-new" "$policy"
    "$@"
)

# The npm packages, each at the exact version package.json pins (package-lock.json agrees): the
# wa-js bundle the page bridge injects on the real web.whatsapp.com (its .d.ts files are what
# the contract test reads) and swagger-ui-dist, which /docs serves.
ensure_npm_packages() {
    local stale
    stale=$(python3 - <<'PY'
import json, pathlib
for name, want in json.load(open("package.json"))["dependencies"].items():
    installed = pathlib.Path("node_modules", name, "package.json")
    have = json.loads(installed.read_text())["version"] if installed.is_file() else None
    if have != want:
        print(f"{name}@{want}")
PY
)
    if [ -n "$stale" ]; then
        say "installing npm packages: $(echo $stale)"
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    fi
}

# The venv at .venv with the package installed editable (with the test extra).
ensure_venv() {
    local python stamp want
    python=$(command -v python3.11 || command -v python3) || die "python3 (3.11 or newer) is required"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required, found $("$python" --version)"
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        "$python" -m venv .venv
    fi
    stamp=.venv/.wa-sidecar-installed
    want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing Python dependencies into .venv"
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        .venv/bin/python -m pip install -q -e '.[test]'
        echo "$want" > "$stamp"
    fi
}

# A first run gets fresh secrets in .env (never overwritten once there).
ensure_env_file() {
    if [ ! -f .env ] && [ -z "${SIDECAR_API_SECRET:-}" ]; then
        say "creating .env from config/.env.example with fresh secrets"
        {
            grep -v -E '^(SIDECAR_API_SECRET|SIDECAR_WEBHOOK_SECRET|SIDECAR_ENCRYPTION_KEY)=' config/.env.example
            .venv/bin/python -m service keygen
        } > .env
        chmod 600 .env
    fi
}
