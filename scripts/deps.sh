#!/usr/bin/env bash
# deps.sh GROUP: make sure the Debian packages a make target needs are present.
# As root it installs what is missing; otherwise it prints the exact apt-get
# line and fails.
#   demo: the simulator build (gcc, libssl-dev)
#   test: demo plus swtpm, swtpm-tools, tpm2-tools, mosquitto, softhsm2 (the archive key's
#         PKCS#11 tests), systemd (systemd-analyze),
#         jq and openssl (the README's by-hand recipe), strace (the --help test and the fault-injection tests),
#         chromium (the dashboard's browser tests, driven headless by chromedp),
#         mariadb-server-core and mariadb-client-core (mariadbd, mariadb-install-db and
#         its my_print_defaults: the MariaDB tests start their own server on a temporary
#         directory; these packages ship no system service, unlike mariadb-server),
#         git (the package tests: version and time of the last commit)
#         and the versitygw S3 gateway (Go module proxy, `go install` into
#         $(go env GOPATH)/bin, where archive/s3store's test finds it; root not needed)
#         and staticcheck (likewise `go install` into $(go env GOPATH)/bin, where
#         `make test` runs it)
#         and node and npm (Node.js 18 or later: the Node-RED node's tests, which
#         install Node-RED from npm into ~/.cache/edgeseal); Debian's nodejs and npm
#         only when no node is on the PATH (a machine with its own Node.js keeps it)
#         and zitadel/oidc's example OpenID provider (likewise, into
#         $(go env GOPATH)/bin/zitadel-oidc-op/, where archive/archived's OIDC
#         test finds it)
#   package: git (`make package`; dpkg-deb, for the tests, comes with dpkg), npm
#         (`npm pack` of the Node-RED node; nodejs and npm when no npm is on the PATH)
#   versitygw, staticcheck, oidc-op: only that Go tool
set -euo pipefail
group=${1:-test}
GO=${GO:-go}
VERSITYGW=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
STATICCHECK=honnef.co/go/tools/cmd/staticcheck
STATICCHECK_VERSION=v0.8.2
OIDC_OP=github.com/zitadel/oidc/v3/example/server
OIDC_OP_VERSION=v3.52.0
# go_install PKG MODULE VERSION: `go install PKG@VERSION` into
# $(go env GOPATH)/bin unless the binary there is built from MODULE VERSION.
go_install() {
  local pkg=$1 mod=$2 version=$3 bin
  bin="$("$GO" env GOPATH | cut -d: -f1)/bin"
  if "$GO" version -m "$bin/${pkg##*/}" 2>/dev/null | grep -q "mod[[:space:]]*$mod[[:space:]]*$version[[:space:]]"; then
    return 0
  fi
  echo "deps: go install $pkg@$version into $bin (a few minutes the first time)" >&2
  GOBIN="$bin" GOFLAGS=-buildvcs=false "$GO" install "$pkg@$version"
}
# versitygw: an S3 server with Object Lock for the S3 object store's test.
install_versitygw() { go_install "$VERSITYGW" github.com/versity/versitygw "$VERSITYGW_VERSION"; }
# staticcheck: the linter `make test` runs after go vet.
install_staticcheck() { go_install "$STATICCHECK" honnef.co/go/tools "$STATICCHECK_VERSION"; }
# oidc-op: a real OpenID provider for the read API's OIDC sign-in test, in
# a directory of its own (its binary is named "server").
install_oidc_op() {
  local bin
  bin="$("$GO" env GOPATH | cut -d: -f1)/bin/zitadel-oidc-op"
  if "$GO" version -m "$bin/server" 2>/dev/null | grep -q "mod[[:space:]]*github.com/zitadel/oidc/v3[[:space:]]*$OIDC_OP_VERSION[[:space:]]"; then
    return 0
  fi
  echo "deps: go install $OIDC_OP@$OIDC_OP_VERSION into $bin" >&2
  GOBIN="$bin" GOFLAGS=-buildvcs=false "$GO" install "$OIDC_OP@$OIDC_OP_VERSION"
}
if [ "$group" = test ]; then
  install_versitygw
  install_staticcheck
  install_oidc_op
fi
if [ "$group" = oidc-op ]; then
  install_oidc_op
  exit 0
fi
if [ "$group" = versitygw ]; then
  install_versitygw
  exit 0
fi
if [ "$group" = staticcheck ]; then
  install_staticcheck
  exit 0
fi
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
pkgs=(gcc libssl-dev)
if [ "$group" = test ]; then
  pkgs+=(swtpm swtpm-tools tpm2-tools mosquitto softhsm2 systemd git jq openssl strace chromium mariadb-server-core mariadb-client-core)
fi
if [ "$group" = package ]; then
  pkgs=(git)
fi
for p in "${pkgs[@]}"; do
  have_pkg "$p" || need+=("$p")
done
# Node.js: any node and npm on the PATH will do (often not Debian's).
if [ "$group" = test ] || [ "$group" = package ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    command -v node >/dev/null 2>&1 || need+=(nodejs)
    command -v npm >/dev/null 2>&1 || need+=(npm)
  fi
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi
echo "deps: missing Debian packages: ${need[*]}" >&2
echo "deps: run as root:  apt-get update && apt-get install -y ${need[*]}" >&2
exit 1
