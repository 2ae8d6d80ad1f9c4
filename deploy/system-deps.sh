#!/usr/bin/env bash
# Debian packages that `make install` and the test suite drive for real: Java 17 and Maven (`itff
# kafka fetch` resolves the Apache Kafka jars, the tests' local broker runs them), headless Chromium
# (dashboard browser tests) and promtool (Prometheus config and alert rules checks), shellcheck (run
# by actionlint), jq (the runbooks' log filters), PostgreSQL's server binaries (the local server of
# `itff postgres` and the tests' PostgreSQL store); and, from the Go module proxy, actionlint (CI
# workflows) and amtool (Alertmanager config). Installs only what is missing.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v jq >/dev/null 2>&1 || need+=(jq)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go tools of the deployment checks (tests/unit/test_deploy_*.py), pinned, into $(go env GOPATH)/bin.
go_tool() {
  local name=$1 module=$2
  # the pinned build in GOPATH/bin, not whatever PATH has (Debian's amtool is too old)
  command -v go >/dev/null 2>&1 || { echo "go is needed to install $name" >&2; return 1; }
  [ -x "$(go env GOPATH)/bin/$name" ] && return 0
  echo "installing $module"
  go install "$module"
}
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
go_tool amtool github.com/prometheus/alertmanager/cmd/amtool@v0.28.1
