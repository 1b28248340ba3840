#!/usr/bin/env bash
# kpistream's two commands:
#   ./run.sh demo   set up, then run the demo (local broker, worker, simulated traffic)
#   ./run.sh test   set up, then run every check: ruff, mypy, unit, property, integration
# Set-up is idempotent: a virtual environment in .venv with the pinned dependencies,
# and (for the tests) Debian's prometheus, prometheus-alertmanager, Java and Maven packages
# and the Apache Kafka jars of tests/kafka/pom.xml (the integration tests' broker).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=${PYTHON:-python3}

setup_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
        touch "$stamp"
    fi
}

setup_debian() {
    local missing=()
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
    # The browser pixel test (tests/deploy/test_pixel.py): headless Chromium and its driver.
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

# The Kafka broker's jars, into tests/kafka/lib (cached in Maven's local repository).
setup_kafka() {
    local version
    version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tests/kafka/pom.xml)
    if [ ! -f "tests/kafka/lib/kafka_2.13-$version.jar" ]; then
        rm -rf tests/kafka/lib
        if ! mvn -q -B -Dstyle.color=never -f tests/kafka/pom.xml dependency:copy-dependencies; then
            echo "run.sh: could not fetch the Apache Kafka $version jars with Maven" >&2
            exit 1
        fi
    fi
}

case "${1:-}" in
    demo)
        shift
        setup_python
        exec "$VENV/bin/kpistream" demo "$@"
        ;;
    test)
        shift
        setup_python
        setup_debian
        setup_kafka
        "$VENV/bin/ruff" check .
        "$VENV/bin/mypy"
        exec "$VENV/bin/pytest" "$@"
        ;;
    *)
        echo "usage: ./run.sh demo | ./run.sh test [pytest args]" >&2
        exit 2
        ;;
esac
