#!/usr/bin/env bash
# deps.sh GROUP: make sure the Debian packages a make target needs are present.
# As root it installs what is missing; otherwise it prints the exact apt-get
# line and fails.
#   demo: the simulator build (gcc, libssl-dev)
#   test: demo plus swtpm, swtpm-tools, tpm2-tools, mosquitto, softhsm2 (the archive key's
#         PKCS#11 tests), systemd (systemd-analyze),
#         jq and openssl (the README's by-hand recipe), strace (the --help test and the fault-injection tests),
#         git (the package tests: version and time of the last commit)
#         and the versitygw S3 gateway (Go module proxy, `go install` into
#         $(go env GOPATH)/bin, where archive/s3store's test finds it; root not needed)
#         and staticcheck (likewise `go install` into $(go env GOPATH)/bin, where
#         `make test` runs it)
#   package: git (`make package`; dpkg-deb, for the tests, comes with dpkg)
#   versitygw, staticcheck: only that Go tool
set -euo pipefail
group=${1:-test}
GO=${GO:-go}
VERSITYGW=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
STATICCHECK=honnef.co/go/tools/cmd/staticcheck
STATICCHECK_VERSION=v0.8.2
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
if [ "$group" = test ]; then
  install_versitygw
  install_staticcheck
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
  pkgs+=(swtpm swtpm-tools tpm2-tools mosquitto softhsm2 systemd git jq openssl strace)
fi
if [ "$group" = package ]; then
  pkgs=(git)
fi
for p in "${pkgs[@]}"; do
  have_pkg "$p" || need+=("$p")
done
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
