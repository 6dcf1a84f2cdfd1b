#!/usr/bin/env bash
# Set up what `make demo` / `make test` need on a fresh machine; fast when already done.
#   scripts/bootstrap.sh python   -> .venv with the pinned packages and hackgap itself
#   scripts/bootstrap.sh system   -> Debian packages the tests use (as root only)
#   scripts/bootstrap.sh anonymeter -> .venv-anonymeter: anonymeter's own pins (the twin gate)
#   scripts/bootstrap.sh docker   -> a Docker engine (Debian's docker.io, dockerd) and mmdebstrap
#   scripts/bootstrap.sh hub      -> configurable-http-proxy (npm) and the team servers' Python
set -euo pipefail
cd "$(dirname "$0")/.."

install_lock() {
    # install_lock PYTHON LOCK: the lock's exact pins into PYTHON's venv. uv (pinned in
    # requirements.lock, installed into .venv first) downloads in parallel and installs about
    # twice as fast as pip here; pip's find-links (this machine's CPU torch wheel) apply to it.
    local py=$1 lock=$2 links=() link
    if [[ ! -x .venv/bin/uv ]]; then
        "$py" -m pip install -r "$lock"
        return
    fi
    for link in ${PIP_FIND_LINKS:-$(.venv/bin/python -m pip config get global.find-links 2>/dev/null)}; do
        links+=(--find-links "$link")
    done
    .venv/bin/uv pip install --python "$py" --compile-bytecode "${links[@]}" -r "$lock"
}

python_env() {
    local stamp=.venv/.installed
    if [[ -f $stamp && $stamp -nt requirements.lock && $stamp -nt pyproject.toml ]]; then
        return 0
    fi
    local py
    py=$(command -v python3.11 || command -v python3)
    [[ -x .venv/bin/python ]] || "$py" -m venv .venv
    echo "Installing pinned Python packages into .venv (first run takes about 2-4 minutes)..."
    local log=.venv/install.log
    if ! { .venv/bin/python -m pip install --upgrade pip "$(grep '^uv==' requirements.lock)" \
        && install_lock .venv/bin/python requirements.lock \
        && .venv/bin/python -m pip install --no-deps --no-build-isolation -e .; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "pip install failed; the whole log is in $log" >&2
        exit 1
    fi
    touch "$stamp"
}

anonymeter_env() {
    # anonymeter 1.1 pins numpy<1.27 and pyarrow<22 (ours are newer): the twin release gate
    # runs it in this second environment (synthetic/attacks.py), from its own lock file.
    local lock=synthetic/anonymeter-requirements.lock stamp=.venv-anonymeter/.installed
    if [[ -f $stamp && $stamp -nt $lock ]]; then
        return 0
    fi
    local py
    py=$(command -v python3.11 || command -v python3)
    [[ -x .venv-anonymeter/bin/python ]] || "$py" -m venv .venv-anonymeter
    echo "Installing anonymeter into .venv-anonymeter (first run takes about a minute)..."
    local log=.venv-anonymeter/install.log
    # --warm compiles anonymeter's numba kernels into the cache the gate uses (~15 s once)
    local warm
    warm=$(mktemp -d)
    if ! { install_lock .venv-anonymeter/bin/python "$lock" \
        && NUMBA_CACHE_DIR=.venv-anonymeter/numba-cache .venv-anonymeter/bin/python -I \
            synthetic/anonymeter_runner.py --warm "$warm"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "anonymeter install failed; the whole log is in $log" >&2
        exit 1
    fi
    rm -rf "$warm"
    touch "$stamp"
}

system_packages() {
    # Debian packages the marked tests need. Without root we leave them alone and the
    # tests that need them say what is missing.
    local want=(chromium)
    local missing=()
    for pkg in "${want[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "Not root: cannot install ${missing[*]}; tests that need them will fail with a hint." >&2
        return 0
    fi
    echo "Installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

docker_engine() {
    # The docker sandbox backend and its image build need an engine and mmdebstrap. As root
    # we install Debian's docker.io and start dockerd when no engine answers; otherwise we
    # say what is missing and the docker-marked tests fail with the same hint.
    local log=/var/log/hackgap-dockerd.log
    if docker info >/dev/null 2>&1 && command -v mmdebstrap >/dev/null; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "Not root: cannot install or start a Docker engine; start one (or run as root)." >&2
        return 0
    fi
    local missing=()
    for pkg in docker.io mmdebstrap iptables; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "Installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    docker info >/dev/null 2>&1 && return 0
    echo "Starting dockerd (log: $log)"
    # setsid: the engine outlives this script and the make run that called it.
    setsid /usr/sbin/dockerd >>"$log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -n 20 "$log" >&2
    echo "dockerd did not answer within 30 s; see $log" >&2
    exit 1
}

hub_parts() {
    # The embedded JupyterHub needs configurable-http-proxy (npm, into infra/sandbox/node_modules)
    # and the team servers' Python environment, a venv of Debian's python3.11 outside any home
    # (sandboxes/singleuser.py; /opt/hackgap/singleuser-<lock hash> as root).
    local need=()
    command -v npm >/dev/null || need+=(nodejs npm)
    [[ -x /usr/bin/python3.11 ]] && /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null \
        || need+=(python3.11 python3.11-venv)
    if [[ ${#need[@]} -gt 0 && $(id -u) -eq 0 ]]; then
        echo "Installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null
    fi
    local chp=infra/sandbox/node_modules/.bin/configurable-http-proxy
    if [[ ! -x $chp || infra/sandbox/package-lock.json -nt $chp ]]; then
        echo "Installing configurable-http-proxy (npm) into infra/sandbox/node_modules..."
        (cd infra/sandbox && npm ci --no-audit --no-fund --loglevel=error) >/dev/null
        touch "$chp"
    fi
    .venv/bin/python -c 'from sandboxes import singleuser as s
if not s.is_ready(): print("Building the team servers Python environment (a few minutes)...")
s.ensure()'
}

for what in "$@"; do
    case $what in
        python) python_env ;;
        system) system_packages ;;
        anonymeter) anonymeter_env ;;
        docker) docker_engine ;;
        hub) hub_parts ;;
        *) echo "unknown bootstrap step: $what" >&2; exit 2 ;;
    esac
done
