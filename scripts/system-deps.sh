#!/usr/bin/env bash
# Make sure the machine has what the local stack and the tests need: a JDK 17+ and Maven
# for the Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS points at one), Prometheus for the
# dashboard test and `dev up --observability`, wrk for the registry benchmark and tmux for
# the `streaming top` test. Installs them with apt-get when we are root on Debian/Ubuntu;
# otherwise says what to install. (Jaeger is built with the Go toolchain by
# `make observability`, part of `make install`.)
set -euo pipefail
missing=()
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
# The dashboard and trace tests run a real Prometheus (so does dev up --observability).
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# The registry benchmark (and its smoke test) drives HTTP load with wrk.
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# The `streaming top` test drives the live view in a tmux pane, as a person would.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  echo "missing: ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" \
       "or set KAFKA_BOOTSTRAP_SERVERS to an existing broker" >&2
  exit 1
fi
