#!/bin/sh
# edgeseal postinst (deb: postinst configure [OLD-VERSION]; rpm: %post 1|2).
# Creates the system user, sets the owners and modes of the config and
# state directories, and reloads systemd. It enables and starts nothing:
# the operator writes the config first. On an upgrade it restarts the
# units that are running. $DPKG_ROOT (dpkg's root directory for maintainer
# scripts, normally empty) prefixes every path; the account commands then
# work on that root's /etc and systemd is left alone.
set -e

root="${DPKG_ROOT:-}"
upgrade=
case "$1" in
configure) [ -z "$2" ] || upgrade=yes ;;
1) ;;
2) upgrade=yes ;;
*) exit 0 ;; # abort-upgrade, abort-remove, ...: nothing to undo
esac

# entry DB NAME: the NAME line of DB (passwd or group) of this root.
entry() {
	if [ -n "$root" ]; then
		grep "^$2:" "$root/etc/$1" 2>/dev/null
	else
		getent "$1" "$2"
	fi
}
# acct COMMAND ARGS...: an account command, on $root's /etc when set.
acct() {
	cmd=$1
	shift
	if [ -n "$root" ]; then
		"$cmd" --prefix "$root" "$@"
	else
		"$cmd" "$@"
	fi
}

# The system user and group edgeseal: no home, no login shell.
if ! entry group edgeseal >/dev/null; then
	acct groupadd --system edgeseal
fi
if ! entry passwd edgeseal >/dev/null; then
	acct useradd --system --gid edgeseal --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin \
		--comment "edgeseal daemons" edgeseal
fi
# edgeseal-api: the API's clients, who may connect to the agent's socket
# (api.socket_group in agent.yaml) but, unlike group edgeseal, not read
# /etc/edgeseal and its keys. The agent joins it to give the socket that group.
if ! entry group edgeseal-api >/dev/null; then
	acct groupadd --system edgeseal-api
fi
acct usermod --append --groups edgeseal-api edgeseal
# /dev/tpmrm0 is root:tss 0660: the agent needs tss (tpm-udev creates it).
if entry group tss >/dev/null; then
	acct usermod --append --groups tss edgeseal
else
	echo "edgeseal: no group tss: install tpm-udev, then: usermod -aG tss edgeseal" >&2
fi
uid=$(entry passwd edgeseal | cut -d: -f3)
gid=$(entry group edgeseal | cut -d: -f3)

# /etc/edgeseal root:edgeseal 0750, its files group edgeseal: the daemons
# read their config, only root changes it.
for d in /etc/edgeseal /etc/edgeseal/mosquitto; do
	chown "0:$gid" "$root$d"
	chmod 0750 "$root$d"
done
for f in agent.yaml archive.yaml mosquitto/edgeseal.conf mosquitto/edgeseal.acl mosquitto/edgeseal-dynsec.json; do
	if [ -f "$root/etc/edgeseal/$f" ]; then
		chgrp "$gid" "$root/etc/edgeseal/$f"
	fi
done

# State: edgeseal:edgeseal 0700 (the units' StateDirectory= keep it so).
for d in /var/lib/edgeseal /var/lib/edgeseal-archive; do
	mkdir -p "$root$d"
	chown "$uid:$gid" "$root$d"
	chmod 0700 "$root$d"
done

# systemd, when it is the running service manager (never under DPKG_ROOT).
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -n "$upgrade" ]; then
		systemctl try-restart edgeseal-agent.service edgeseal-archive.service || true
	fi
fi
exit 0
