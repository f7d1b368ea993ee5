// Package archive is the central receiver: it verifies bundles, stores them
// write-once, keeps a signed log and answers with receipts.
//
// # Pipeline
//
// Archive.Receive(ctx, site, device, raw) is the entry point, used by
// ImportDir for bundles brought on removable media; it is
// Archive.AdmitHashed and Ticket.Wait, and the daemon's MQTT subscriber
// calls the two halves separately (sync.SubscriberOptions.Admit: a refusal is an answer, not
// an error) so that a device's next bundle is verified while the earlier
// ones are being made durable. For each bundle it:
//
//  1. answers a digest accepted before with the same receipt (stored
//     once), unless it arrives as another device;
//  2. reads the tar strictly, in place (bundle.ReadBytes, within
//     Options.Limits);
//  3. looks the device up in the registry: enrolled and approved, not
//     revoked; its current epoch (see Epochs below); the bundle not
//     sealed by a signing key an operator revoked (keychain.go);
//  4. runs verify.Verify against the device's approved trust and the
//     State its last accepted bundle of the current epoch left (its
//     chain state, chainstate.go) (the same
//     code as `edgeseal verify`), plus the archive's checks (Check*
//     constants): the topic's
//     device is the bag's and the checkpoint's origin, and, on a
//     statement signed by the device's key, the checkpoint is consistent
//     with every checkpoint accepted from it (a fork, same size other
//     root or a bundle extending an older checkpoint, is an ALARM), no
//     replay (not beyond the last accepted), no gap (the previous
//     checkpoint is the last accepted one), NV counter and TPM clock
//     forward; every encrypted payload opens with the content key it
//     names to the plaintext its record names (CheckDecrypt,
//     contentkey.go: the plaintext is dropped at once);
//  5. accepted: Put into the ObjectStore, append an archivesig.ReceiptEntry to
//     the archive log (idempotency key = bundle digest), sign the log's
//     checkpoint as a C2SP note, sign the receipt (archivesig.SignReceipt:
//     log index, signed checkpoint, inclusion proof, retention) and
//     record it with the device's new State in the index; the receipt is
//     answered only when all of these are durable. Accepted bundles are
//     committed in groups by one committer goroutine (pipeline.go): the
//     objects in parallel, then one log commit, one checkpoint and one
//     index commit for the group;
//  6. refused: keep the bytes and the reason in quarantine/<hex>.tar and
//     .json (the reason only for bytes that are not a bundle or a device
//     that is not approved; within Options.Quarantine's quotas, the
//     oldest entries dropped past them: quarantine_quota.go), raise an
//     Alert (log + Options.Alert, wired to MQTT edgeseal/v1/alerts; one
//     per device and reason per interval: alertlimit.go), and answer with
//     a signed rejection (the wire
//     format of package sync) and a *RejectedError. A device's later
//     bundles extend the refused one, so they fail with a gap; while the
//     archive runs, such a gap names the refused bundle and the first
//     cause of the run (refused.go).
//
// A bundle not signed by the device's current key is told apart in its
// refusal: signed by the key of an epoch a rekey closed (CheckEpoch), by a
// new key enrolled and waiting for a rekey (CheckRekey, with the command
// to run), or by a key unknown for the device (CheckKey).
//
// # Device alerts
//
// ReceiveDeviceAlert takes an alert a device published on its own topic
// (sync.DeviceAlert, checked by the subscriber): counted by kind, the last
// MaxDeviceAlerts of each device kept in memory for DeviceAlerts, logged
// once per device and kind per interval (alertlimit.go).
//
// # Enrollment
//
// Devices.Enroll keeps every pending request of a device by key id
// (bounded, the oldest evicted: pending.go). Before approval the request's
// AK is bound to its EK by credential activation (activation.go): the
// archive's Challenge is answered with the TPM's ActivateCredential, and
// ApproveEnrollment refuses a request not activated unless the operator
// says NoActivation. With EK roots (enroll.ek_ca) a request's EK
// certificate must chain to them (ekcert.go).
//
// # Epochs
//
// A device's history is a sequence of epochs, each one chain of bundles
// under one key from checkpoint size 0 (epoch.go). Archive.Rekey, the
// operator's `edgeseal archive devices rekey`, closes the current epoch
// at its last accepted checkpoint and opens the next under the device's
// pending new key: an EpochStatement appended to the archive log, an
// index event, then the registry (rebuilt from the log at Open when it
// is behind). Receipts, receipt entries and accept events carry the epoch
// (absent for epoch 1). docs/epochs.md describes the formats.
//
// # Retention, legal hold and purge
//
// With Options.Classes each bundle is kept until its acceptance plus the
// longest retention class of its export records (retention.go): its
// receipt says so and the object store keeps that retain-until
// (Retainer; archive/s3store: the Object Lock retain-until of the
// upload). A bundle naming an unknown class is refused (CheckRetention).
// Archive.Hold and Archive.Purge are operator actions signed with an
// operator's Ed25519 key (Options.OperatorKeys): an OperatorStatement
// appended to the archive log (operator.go), the mechanism of the rekey
// statement with a signature. A purge replaces each bundle past its
// retain-until and not held by its skeleton, the bag without its payload
// files (purge.go), which bundle/verify.VerifyPurged checks. A hold of a
// device also holds the bundles it sends later (hold_device.go). With
// operator keys, device approvals (carrying the DEVICE.json) and
// revocations are signed statements too (Archive.DeviceStatement, queued
// by the operator commands in a pending folder the archive takes,
// operator_pending.go), and the device states the archive trusts are
// rebuilt from the log at Open (devices_signed.go, devices_gate.go):
// devices.json is then a view of the log beside the pending requests,
// written anew when deleted or edited (devices_view.go). An operator key
// seen in a policy admin set of an accepted bundle is refused; the admin
// key ids are kept in the index (separation.go). Object stores that list
// their objects (ObjectLister) can be read without the archive
// (StoredBundlesOf).
//
// One device's bundles are verified one at a time, in the order they are
// admitted, each against the state the device's bundles still in flight
// will leave; devices in parallel. A bundle that fails to commit fails the
// device's later ones in flight too (no answer: the agent resends), and
// answers come in admission order.
//
// # Storage (Options.Dir)
//
//	tlog/         the archive log (a tlog.Log, logengine.go) on the posix
//	              engine, the default of a new Dir (logdir.go): a Tessera
//	              log in C2SP tlog-tiles layout, one ReceiptEntry per
//	              bundle, one EpochStatement per rekey, one
//	              OperatorStatement per legal hold or purge, key entries.
//	              On the journal engine (archives created before; kept
//	              while log/ exists) log/, a store.Journal, holds the same
//	              entries, signed checkpoints (notes) stored beside it by
//	              size; MigrateLog (logmigrate.go) moves it to tlog/ and
//	              sets it aside in log.migrated/. On the mysql engine a
//	              database holds them
//	logkeys/      store.Journal: record i is the deduplication key of log
//	              entry i (logKeyOf), written after the entry and brought
//	              up to the log's size at Open
//	index/        store.Journal: one accept event per bundle (digest, device,
//	              epoch, log index, the device's new State) with the receipt
//	              as a payload of the same commit, one rekey event per
//	              rekey, one event per operator statement
//	state/        archive/state Badger store (Options.State: another
//	              store, MariaDB): each device's chain state and accepted
//	              checkpoints, advanced per group (chainstate.go)
//	index-mark.json  how far Open read the index (indexmark.go): Open
//	              reads only the events after it, the whole index once
//	              for an archive without one
//	state-engine  the daemon's archive_state.engine of the last start
//	              (archive/archived): another one removes index-mark.json
//	              (RefillChainState) to fill the new store from the index
//	objects/      FSStore: sha256/ab/<hex>, 0444, write-once (earlier builds: sha256/ab/cd/<hex>, still read);
//	              retention/<hex>.json, an object's retain-until and legal hold
//	quarantine/   refused bundles and their reasons (bounded, oldest dropped)
//	devices.json  the device registry (see Devices), rewritten atomically
//	archive-keys.json  the archive key announcements (RotateKey), oldest first
//
// The log entry is written before its key record and the index event; a
// crash between them is completed at Open (the key records from the log,
// the index event from the stored bundle), so no accepted bundle is ever
// without its receipt or logged twice, and no device state is lost.
//
// # Object store
//
// ObjectStore is the write-once seam (contract on the interface; every
// implementation runs objstoretest.Run). FSStore is the filesystem
// backend; archive/s3store is the S3 backend, each object locked in
// COMPLIANCE mode, and passes the same conformance test against a real
// S3 server (versitygw).
//
// # Key
//
// Options.Key (or Options.Signer: a PKCS#11 token key, archive/keystore)
// signs receipts, rejections, enrollment answers and checkpoints.
// RotateKey switches to a new key: the announcement, signed by the old and
// the new key, is appended to the log as a key entry (LogKeyEntry; the
// log's non-bundle entries carry a "type" and are skipped by recovery and
// scrub), kept in archive-keys.json, and carried by every receipt and
// rejection from then on (docs/archive-keys.md). Open refuses a key other
// than the one the last announcement names (*KeyMismatchError).
package archive
