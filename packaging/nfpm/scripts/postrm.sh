#!/bin/sh
# edgeseal postrm (deb: postrm remove|purge|upgrade|...; rpm: %postun 0|1).
# Makes a running systemd forget the removed unit files. Nothing else:
# purging keeps the state and the user, which may hold evidence.
set -e

case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
