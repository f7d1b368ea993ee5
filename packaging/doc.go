// Package packaging holds the packaging of edgeseal and its tests; it has
// no code of its own. packaging/build (a separate module, so that nfpm stays
// out of the edgeseal binary's module graph) builds the binary for the
// host's architecture (`make package`) or for amd64, arm64 and armv7
// (`make package ARCHS=all`) and packs .deb and .rpm files as
// packaging/nfpm/nfpm.yaml says, with the manual page edgeseal(1) that a
// build for the machine running it writes (`edgeseal help --man`), the
// README, CHANGELOG and docs/*.md under /usr/share/doc/edgeseal, and the
// example policy of packaging/examples. The tests here build all of them
// once per run and check every file, owner and mode (dpkg-deb -c, -x, -e),
// that the man page is what the packaged binary writes and that the
// example policy loads, the maintainer scripts
// (with stub commands, and for real by installing, removing and purging the
// .deb with dpkg --root), the example configs, the cross-built binaries and
// that a second build gives the same bytes. `make package` also packs the
// Node-RED node package (integrations/node-red) with npm pack into dist/;
// a test here checks what that tarball holds.
//
// packaging/mosquitto is the production Mosquitto configuration, shipped in
// the packages as an example under /etc/edgeseal/mosquitto.
package packaging
