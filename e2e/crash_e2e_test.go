package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/soaktest"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// Acceptance bounds of the crash test.
const (
	crashRounds  = 20
	crashClients = 64
	maxRestart   = 2 * time.Second // restart to ready
	crashBudget  = 90 * time.Second
)

// crashLedger is what the clients learnt: ids answered 201/200 and ids
// sent without an answer.
type crashLedger struct {
	mu         sync.Mutex
	answered   map[string]bool
	unanswered map[string]bool
}

func (l *crashLedger) result(id string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		l.answered[id] = true
		delete(l.unanswered, id)
	} else if !l.answered[id] {
		l.unanswered[id] = true
	}
}

// postCrash posts one small export; ok when answered 201 or 200. A 4xx is
// a test failure: nothing here should be refused. The body is a function
// of the id, so that a retry is the same export (a different payload
// under a used id is refused as an id conflict).
func postCrash(t *testing.T, c *api.Client, id string) (ok bool) {
	h := fnv.New32a()
	h.Write([]byte(id))
	body := fmt.Appendf(nil, `{"id":%q,"workflow":"invoices-daily","app":"n8n","classification":"internal","destination":"archive","data":`+e2eInvoice+`}`, id, h.Sum32()%999999)
	r, err := do(t, c, "POST", "http://agent/v1/exports", tokN8N, "application/json", body)
	if err != nil {
		return false
	}
	switch {
	case r.status == 201 || r.status == 200:
		var rc agent.ExportReceipt
		if json.Unmarshal(r.body, &rc) != nil || rc.ExportID != id {
			t.Errorf("%s: receipt %s", id, r.body)
			return false
		}
		return true
	case r.status >= 400 && r.status < 500:
		t.Errorf("%s: refused %d %s", id, r.status, r.body)
	}
	return false // 5xx: the agent is going down; retried later
}

// 64 clients post over the socket while the agent is SIGKILLed at random
// moments, 20 rounds (some killed while starting): every export answered
// 201/200 is in the journal after restart exactly once, ids never
// answered are retried after the restart and are not duplicated, the
// journal scrubs clean and its records chain, and every restart is ready
// within 2 s.
func TestAgentCrash(t *testing.T) {
	needAgent(t)
	if testing.Short() && !testenv.CI() { // CI=true runs it under -short too
		t.Skip("crash test: -short")
	}
	scale := soaktest.Scale(t) // make soak: more rounds, the same per-round bounds
	rounds, budget := crashRounds*scale, crashBudget*time.Duration(scale)
	start := time.Now()
	a := newAgentDir(t, agentOpts{sealEvery: 200, sealInterval: "500ms", maxBody: "64 KiB"})
	sock := unixClient(a.socket)
	led := &crashLedger{answered: map[string]bool{}, unanswered: map[string]bool{}}
	var restarts []time.Duration
	kills := 0

	p := a.start(t, true) // the first start creates the TPM keys: not timed
	for round := range rounds {
		if round > 0 {
			if round%5 == 4 {
				// Kill while starting, at a random moment before ready.
				early := a.start(t, false)
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
				early.kill()
				kills++
			}
			p = a.start(t, true)
			restarts = append(restarts, p.ready)
			if p.ready > maxRestart {
				t.Errorf("round %d: restart to ready took %v, bound %v", round, p.ready, maxRestart)
			}
		}
		// Retry what went unanswered before the kill: must not duplicate.
		led.mu.Lock()
		retry := make([]string, 0, len(led.unanswered))
		for id := range led.unanswered {
			retry = append(retry, id)
		}
		led.mu.Unlock()
		for _, id := range retry {
			if !postCrash(t, sock, id) {
				t.Fatalf("round %d: retry of %s after restart not answered", round, id)
			}
			led.result(id, true)
		}

		stop := startClients(crashClients, func(c, n int) bool {
			id := fmt.Sprintf("r%02d-c%02d-%05d", round, c, n)
			ok := postCrash(t, sock, id)
			led.result(id, ok)
			return ok
		})
		time.Sleep(time.Duration(50+rand.IntN(350)) * time.Millisecond)
		p.kill()
		stop()
		sock.CloseIdleConnections() // to the dead process
		if t.Failed() {
			t.FailNow()
		}
	}

	// Last restart: retry the rest, then stop cleanly and read the journal.
	p = a.start(t, true)
	restarts = append(restarts, p.ready)
	led.mu.Lock()
	for id := range led.unanswered {
		if !postCrash(t, sock, id) {
			t.Fatalf("final retry of %s not answered", id)
		}
		led.answered[id] = true
	}
	led.unanswered = map[string]bool{}
	led.mu.Unlock()
	p.stop()

	j := a.openJournal(t)
	ctx := context.Background()
	count := map[string]int{}
	var prevLeaf [32]byte
	err := j.Scrub(ctx, func(seq uint64, raw []byte, prev [32]byte) error {
		rec, err := custody.ParseRecord(raw)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		if rec.Seq != seq || rec.Prev != prev || prev != prevLeaf {
			return fmt.Errorf("record %d: seq %d, prev %x, chain %x", seq, rec.Seq, rec.Prev, prevLeaf)
		}
		prevLeaf = merkle.LeafHash(raw)
		if rec.Type == custody.TypeExportRejected {
			return fmt.Errorf("record %d: a crash-test export was rejected: %s", seq, rec.Body)
		}
		if rec.Type != custody.TypeExport {
			return nil
		}
		body, err := rec.ExportBody()
		if err != nil {
			return err
		}
		count[body.ExportID]++
		return nil
	})
	if err != nil {
		t.Fatalf("journal does not verify: %v", err)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("export %s journaled %d times", id, n)
		}
	}
	for id := range led.answered {
		if count[id] != 1 {
			t.Errorf("export %s was answered but is journaled %d times", id, count[id])
		}
	}
	sort.Slice(restarts, func(i, k int) bool { return restarts[i] < restarts[k] })
	t.Logf("%d rounds, %d kills during startup, %d exports answered, %d journaled; restart to ready: median %v, max %v; took %v",
		rounds, kills, len(led.answered), len(count), restarts[len(restarts)/2], restarts[len(restarts)-1], time.Since(start).Round(time.Millisecond))
	if len(led.answered) < rounds*crashClients {
		t.Errorf("only %d exports answered in %d rounds: the load did not run", len(led.answered), rounds)
	}
	if d := time.Since(start); d > budget {
		t.Errorf("crash test took %v, budget %v", d, budget)
	}
}
