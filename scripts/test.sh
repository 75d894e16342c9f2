#!/usr/bin/env bash
# Full Ringlog check: system packages, Python venv, release build, clippy, Rust tests, and the
# end-to-end suite (real kcat / confluent-kafka / kafka-python clients against the real binary).
# Runnable from a clean clone as root on Debian 12; CI runs it with CI=true and no stdin.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==== %s [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }

# --- system packages ----------------------------------------------------------------------------
APT_PACKAGES=(kcat librdkafka-dev pkg-config)
# A bare Debian python3 lacks venv/ensurepip until python3-venv is installed.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    APT_PACKAGES+=(python3-venv)
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    step "apt-get install ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    # Update the package lists only when there are none, or when installing from them fails.
    if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        $SUDO apt-get update -q
    fi
    if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        $SUDO apt-get update -q
        $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

# --- Python venv for the e2e clients -------------------------------------------------------------
step "python venv (.venv) from tests/requirements.txt"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt

# --- Java client for the e2e tests (tests/java: kafka-clients 4.x from Maven Central) ------------
# Maven keeps its downloads in ~/.m2; the jar is rebuilt only when a source is newer than it.
step "java client jar (tests/java)"
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    if ! $SUDO apt-get install -y -q --no-install-recommends maven openjdk-17-jdk-headless; then
        $SUDO apt-get update -q
        $SUDO apt-get install -y -q --no-install-recommends maven openjdk-17-jdk-headless
    fi
fi
JAVA_JAR=tests/java/target/failover-client.jar
if [ ! -f "$JAVA_JAR" ] || [ -n "$(find tests/java/pom.xml tests/java/src -newer "$JAVA_JAR" -print -quit)" ]; then
    mvn -q -B -f tests/java/pom.xml package -DskipTests
else
    echo "$JAVA_JAR is up to date"
fi

# --- Rust ----------------------------------------------------------------------------------------
step "source shape: no file over 1,000 lines, no import cycle between top-level modules"
python3 scripts/check_structure.py

step "cargo build --release --workspace"
cargo build --release --workspace

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --release"
cargo test --release

# --- end-to-end ----------------------------------------------------------------------------------
step "pytest tests/e2e"
export RINGLOG_BIN="${RINGLOG_BIN:-$PWD/target/release/ringlog}"
# Hard cap so a hang cannot eat the CI budget; each test also has its own limit (conftest.py).
timeout -k 30 --signal=INT 1500 \
    .venv/bin/python -m pytest -x -v -p no:cacheprovider tests/e2e
