package archive_test

import (
	"bytes"
	"fmt"
	gosync "sync"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestConcurrentDevices receives several devices' chains in parallel, each
// bundle delivered three times at once (a broker duplicating): every
// bundle is logged once and all copies get the same receipt.
func TestConcurrentDevices(t *testing.T) {
	e := newEnv(t)
	const devices, bundles, copies = 3, 3, 3
	chains := make([]*bundletest.Chain, devices)
	for i := range chains {
		chains[i] = newChain(t, bundles, bundletest.Options{Site: "site1", Device: fmt.Sprintf("dev%d", i), Records: 4})
		e.approve(chains[i])
	}
	var wg gosync.WaitGroup
	errs := make(chan error, devices*bundles*copies)
	for _, c := range chains {
		wg.Go(func() {
			for _, b := range c.Bundles {
				data, _ := b.Bytes()
				replies := make([][]byte, copies)
				var inner gosync.WaitGroup
				for k := range copies {
					inner.Go(func() {
						r, err := e.a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, data)
						if err != nil {
							errs <- fmt.Errorf("%s: %w", c.DeviceName(), err)
						}
						replies[k] = r
					})
				}
				inner.Wait()
				for k := 1; k < copies; k++ {
					if !bytes.Equal(replies[k], replies[0]) {
						errs <- fmt.Errorf("%s: copies got different receipts", c.DeviceName())
					}
				}
				if _, err := archivesig.VerifyReceipt(replies[0], e.a.KeyID(), e.a.PublicKey()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.a.LogSize(); n != devices*bundles {
		t.Fatalf("log size %d, want %d", n, devices*bundles)
	}
	if st := e.a.Stats(); st.Accepted != devices*bundles || st.Duplicates != devices*bundles*(copies-1) || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}
