package sync_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// The agent wires the journal's outbox to the archive: OnReceipt journals
// delivery.receipt before the entry is deleted, and the sealer calls Wake
// after PutOutbox.
func ExamplePublisher() {
	ctx := context.Background()
	j, err := store.Open(ctx, store.Options{Dir: "/var/lib/edgeseal/journal"})
	if err != nil {
		return
	}
	defer j.Close()
	var archiveKey ed25519.PublicKey // from the agent's config
	var clientTLS *tls.Config        // roots + the device's client certificate
	p, err := sync.NewPublisher(sync.PublisherOptions{
		Broker: "ssl://archive.example:8883", Site: "site1", Device: "dev1", TLS: clientTLS,
		Outbox: j, ArchiveKey: archiveKey,
		OnReceipt: func(ctx context.Context, id string, receipt []byte) error {
			return nil // append a delivery.receipt record naming id and the receipt
		},
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		return
	}
	go func() { _ = p.Start(ctx) }()
	// after each seal: j.PutOutbox(ctx, id, bundleBytes); p.Wake()
	_ = p.Stats() // status page: Connected, InFlight, OutboxDepth, LastError
}
