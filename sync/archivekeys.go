package sync

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/dsse"
)

// ArchiveKeyring decides which archive key a reply must verify under,
// following the archive's key rotations (archivesig.ArchiveKeys): the agent
// implements it with the keys it was configured with and those it learned
// (persisted, journaled). When PublisherOptions.ArchiveKeys is set,
// receipts and rejections verify under the key it returns for the key id
// of one of their signatures.
type ArchiveKeyring interface {
	// ReplyKey learns the announcements chain carries (those refused are
	// ignored) and returns the key of keyID if it may sign a reply about
	// archive log index logIndex now (a rejection passes NoLogIndex);
	// else an error saying why (a *archivesig.ArchiveKeyError).
	ReplyKey(ctx context.Context, keyID string, logIndex uint64, chain [][]byte) (ed25519.PublicKey, error)
}

// NoLogIndex is the log index ReplyKey is asked about for a reply that
// has none (a rejection): a retired key signs it only during its overlap.
const NoLogIndex = 1<<53 - 1

// VerifyReceiptRing parses a receipt strictly and checks it is signed by a
// key ring accepts (learning the announcements the receipt carries).
func VerifyReceiptRing(ctx context.Context, b []byte, ring ArchiveKeyring) (*archivesig.Receipt, error) {
	env, err := parseReply(b)
	if err != nil {
		return nil, err
	}
	return verifyReceiptRingEnvelope(ctx, env, ring)
}

// verifyReceiptRingEnvelope is VerifyReceiptRing of a reply parsed
// already (parseReply).
func verifyReceiptRingEnvelope(ctx context.Context, env *dsse.Envelope, ring ArchiveKeyring) (*archivesig.Receipt, error) {
	r, err := archivesig.ReceiptOf(env)
	if err != nil {
		return nil, &ReplyError{Kind: "receipt", Reason: "verify", Err: err}
	}
	if err := verifyRing(ctx, env, ring, r.LogIndex, r.KeyChain); err != nil {
		return nil, &ReplyError{Kind: "receipt", Reason: "signature", Err: err}
	}
	return r, nil
}

// VerifyRejectionRing is VerifyRejection under the keys ring accepts.
func VerifyRejectionRing(ctx context.Context, b []byte, ring ArchiveKeyring) (*Rejection, error) {
	env, rej, err := decodeReply[Rejection](b, "rejection", RejectionPayloadType)
	if err != nil {
		return nil, err
	}
	if err := verifyRing(ctx, env, ring, NoLogIndex, rej.KeyChain); err != nil {
		return nil, &ReplyError{Kind: "rejection", Reason: "signature", Err: err}
	}
	return rej, nil
}

func verifyRing(ctx context.Context, env *dsse.Envelope, ring ArchiveKeyring, logIndex uint64, chain [][]byte) error {
	return env.VerifyAnyEd25519(func(keyID string) (ed25519.PublicKey, error) {
		return ring.ReplyKey(ctx, keyID, logIndex, chain)
	})
}

// KeysRing is an ArchiveKeyring over archivesig.ArchiveKeys that learns in
// memory only (tools reading replies offline; the agent's ring journals
// and keeps what it learns). Now defaults to time.Now.
type KeysRing struct {
	Keys *archivesig.ArchiveKeys
	Now  func() time.Time
}

// ReplyKey implements ArchiveKeyring.
func (r KeysRing) ReplyKey(_ context.Context, keyID string, logIndex uint64, chain [][]byte) (ed25519.PublicKey, error) {
	_, lerr := r.Keys.LearnChain(chain)
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	pub, err := r.Keys.Key(keyID, logIndex, now())
	if err != nil && lerr != nil {
		return nil, fmt.Errorf("%w (and the reply's key chain was refused: %w)", err, lerr)
	}
	return pub, err
}
