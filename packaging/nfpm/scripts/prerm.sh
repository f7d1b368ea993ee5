#!/bin/sh
# edgeseal prerm (deb: prerm remove|upgrade|...; rpm: %preun 0|1).
# On removal (not on upgrade) stops and disables both units. The config,
# the state (journal, keys, archive log) and the user stay: remove them by
# hand if the data is no longer needed.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
[ -z "${DPKG_ROOT:-}" ] || exit 0

units="edgeseal-agent.service edgeseal-archive.service"
if command -v systemctl >/dev/null 2>&1; then
	# shellcheck disable=SC2086
	systemctl --no-reload disable $units >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		# shellcheck disable=SC2086
		systemctl stop $units || true
	fi
fi
exit 0
