package witness

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Check names (docs/auditors.md).
const (
	CheckSignature = "archive.signature"
	CheckFork      = "archive.fork"
	CheckChain     = "archive.chain"
	CheckLog       = "archive.log"
)

// Failure is one inconsistency: the two checkpoints it is between (A
// nil when it concerns one) and what does not hold.
type Failure struct {
	A, B   *Sighting
	Detail string
}

// String names both checkpoints and the devices that were shown them.
func (f Failure) String() string {
	if f.A == nil {
		return fmt.Sprintf("%s: %s", f.B.Name(), f.Detail)
	}
	return fmt.Sprintf("%s and %s: %s", f.A.Name(), f.B.Name(), f.Detail)
}

// Result is one named check's outcome.
type Result struct {
	Name     string    `json:"name"`
	OK       bool      `json:"ok"`
	Skipped  bool      `json:"skipped,omitempty"` // not run (counts as passed: nothing to check)
	Detail   string    `json:"detail"`
	Failures []Failure `json:"-"`
	Messages []string  `json:"failures,omitempty"`
}

// Report is the outcome of Check.
type Report struct {
	Origin      string   `json:"origin"`
	Checkpoints int      `json:"checkpoints"` // authenticated sightings
	Distinct    int      `json:"distinct"`    // distinct (size, root)
	Devices     []string `json:"devices"`
	Checks      []Result `json:"checks"`
	// Unrelated: groups of checkpoints no proof and no log copy relate
	// to each other (each a description of the group), when more than
	// one; they are not shown consistent, only not shown inconsistent.
	Unrelated []string `json:"unrelated,omitempty"`
}

// OK reports whether every check passed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Check runs the checks over what c collected; m and ms are the log copy
// and its own checkpoint (AddMirror), both nil without one.
func Check(c *Collector, m *Mirror, ms *Sighting) *Report {
	r := &Report{Origin: c.origin, Checkpoints: len(c.Sightings), Devices: c.Devices()}
	g := graph{}
	byNode := map[node][]*Sighting{}
	bySize := map[uint64][]node{}
	for _, s := range c.Sightings {
		n := s.node()
		if _, ok := byNode[n]; !ok {
			bySize[s.Size] = append(bySize[s.Size], n)
		}
		byNode[n] = append(byNode[n], s)
	}
	r.Distinct = len(byNode)

	sig := Result{Name: CheckSignature, OK: len(c.Unsigned) == 0}
	sig.Detail = fmt.Sprintf("%d checkpoint(s) of %s signed by a trusted archive key", len(c.Sightings), c.origin)
	if c.Foreign > 0 {
		sig.Detail += fmt.Sprintf("; %d of another archive skipped", c.Foreign)
	}
	if !sig.OK {
		sig.Detail = fmt.Sprintf("%d checkpoint(s) not signed by a trusted archive key of %s", len(c.Unsigned), c.origin)
		sig.Messages = c.Unsigned
	}
	r.Checks = append(r.Checks, sig)

	fork := Result{Name: CheckFork}
	sizes := make([]uint64, 0, len(bySize))
	for s := range bySize {
		sizes = append(sizes, s)
	}
	slices.Sort(sizes)
	for _, size := range sizes {
		ns := bySize[size]
		for _, n := range ns[1:] {
			fork.Failures = append(fork.Failures, Failure{A: byNode[ns[0]][0], B: byNode[n][0],
				Detail: fmt.Sprintf("the archive signed two roots for size %d (%s; %s)", size, devicesOf(byNode[ns[0]]), devicesOf(byNode[n]))})
		}
	}
	fork.OK = len(fork.Failures) == 0
	fork.Detail = fmt.Sprintf("%d size(s), one root each", len(sizes))
	if !fork.OK {
		fork.Detail = fmt.Sprintf("%d size(s) with more than one root: the archive showed inconsistent logs", len(fork.Failures))
	}
	r.Checks = append(r.Checks, fork)

	r.Checks = append(r.Checks, checkChain(c, byNode, bySize, g))
	r.Checks = append(r.Checks, checkLog(m, ms, byNode, g))
	for i := range r.Checks {
		for _, f := range r.Checks[i].Failures {
			r.Checks[i].Messages = append(r.Checks[i].Messages, f.String())
		}
	}
	r.Unrelated = unrelated(byNode, g)
	return r
}

// checkChain checks every consistency proof against every checkpoint of
// the size it starts from, and that no device's records go back.
func checkChain(c *Collector, byNode map[node][]*Sighting, bySize map[uint64][]node, g graph) Result {
	res := Result{Name: CheckChain}
	held, unmatched := 0, 0
	for _, s := range c.Sightings {
		if s.WitnessFrom == 0 {
			continue
		}
		from := bySize[s.WitnessFrom]
		if len(from) == 0 {
			unmatched++
			continue
		}
		for _, n := range from {
			p := byNode[n][0]
			if err := proofHolds(p, s); err != nil {
				res.Failures = append(res.Failures, Failure{A: p, B: s,
					Detail: fmt.Sprintf("the consistency proof %s was given from size %d does not hold: %v", whoOf(s), s.WitnessFrom, err)})
				continue
			}
			held++
			g.edge(n, s.node())
		}
	}
	// A device's records in journal order: the archive checkpoints it
	// accepted never shrink.
	var recs []*Sighting
	for _, s := range c.Sightings {
		if s.fromRecord {
			recs = append(recs, s)
		}
	}
	slices.SortStableFunc(recs, func(a, b *Sighting) int {
		return cmp.Or(strings.Compare(a.Device, b.Device), cmp.Compare(a.Seq, b.Seq))
	})
	for i := 1; i < len(recs); i++ {
		a, b := recs[i-1], recs[i]
		if a.Device == b.Device && a.Seq != b.Seq && b.Size < a.Size {
			res.Failures = append(res.Failures, Failure{A: a, B: b, Detail: fmt.Sprintf("%s accepted a smaller archive checkpoint after a larger one", a.Device)})
		}
	}
	res.OK = len(res.Failures) == 0
	res.Detail = fmt.Sprintf("%d consistency proof(s) hold", held)
	if unmatched > 0 {
		res.Detail += fmt.Sprintf("; %d start from a checkpoint not among the inputs (not checked)", unmatched)
	}
	if !res.OK {
		res.Detail = fmt.Sprintf("%d consistency proof(s) or device chain(s) do not hold: the archive showed inconsistent logs", len(res.Failures))
	}
	return res
}

// checkLog checks every checkpoint no larger than the log copy's against
// the copy's tree, once the copy's tiles give its own checkpoint's root.
func checkLog(m *Mirror, ms *Sighting, byNode map[node][]*Sighting, g graph) Result {
	res := Result{Name: CheckLog, OK: true}
	if m == nil {
		res.Skipped, res.Detail = true, "no copy of the archive log given (--log): checkpoints are related only by the proofs above"
		return res
	}
	root, err := m.TreeRoot(ms.Size)
	if err != nil || root != ms.Root {
		res.OK = false
		if err == nil {
			err = fmt.Errorf("the tiles give root %x…", root[:6])
		}
		res.Detail = fmt.Sprintf("the log copy in %s does not give its own checkpoint %d: %v (a damaged or incomplete copy, no evidence either way)", m.Dir(), ms.Size, err)
		return res
	}
	checked, beyond := 0, 0
	for n, ss := range byNode {
		if n.size > ms.Size {
			beyond++
			continue
		}
		got, err := m.TreeRoot(n.size)
		if err != nil {
			res.Failures = append(res.Failures, Failure{B: ss[0], Detail: fmt.Sprintf("cannot be read from the log copy: %v", err)})
			continue
		}
		if got != n.root {
			res.Failures = append(res.Failures, Failure{A: ms, B: ss[0],
				Detail: fmt.Sprintf("the log the archive serves has another root at size %d (%s): the archive showed inconsistent logs", n.size, devicesOf(ss))})
			continue
		}
		checked++
		g.edge(n, ms.node())
	}
	slices.SortFunc(res.Failures, func(a, b Failure) int { return cmp.Compare(a.B.Size, b.B.Size) })
	res.OK = len(res.Failures) == 0
	res.Detail = fmt.Sprintf("%d checkpoint(s) are in the log copied in %s (size %d)", checked, m.Dir(), ms.Size)
	if beyond > 0 {
		res.Detail += fmt.Sprintf("; %d larger than the copy (not checked)", beyond)
	}
	if !res.OK {
		res.Detail = fmt.Sprintf("%d checkpoint(s) not in the log copied in %s (size %d): the archive showed inconsistent logs", len(res.Failures), m.Dir(), ms.Size)
	}
	return res
}

// maxTops bounds the groups of unrelated checkpoints described one by
// one (the largest first); the rest are counted.
const maxTops = 64

// unrelated describes, when there is more than one, the largest
// checkpoints no proof leads on from (the tops of the prefix relation)
// and the checkpoints proven prefixes of each: two tops are not shown
// consistent with each other, even when they share a prefix.
func unrelated(byNode map[node][]*Sighting, g graph) []string {
	var tops []node
	for n := range byNode {
		if len(g[n]) == 0 {
			tops = append(tops, n)
		}
	}
	if len(tops) < 2 {
		return nil
	}
	slices.SortFunc(tops, func(a, b node) int { return cmp.Compare(b.size, a.size) })
	rev := g.reverse()
	var out []string
	for i, t := range tops {
		if i == maxTops {
			out = append(out, fmt.Sprintf("and %d more", len(tops)-maxTops))
			break
		}
		below := rev.below(t)
		var ss []*Sighting
		for n := range below {
			ss = append(ss, byNode[n]...)
		}
		out = append(out, fmt.Sprintf("%s, with %d smaller checkpoint(s) proven its prefix; %s", byNode[t][0].Name(), len(below)-1, devicesOf(ss)))
	}
	return out
}

// devicesOf names the devices (and the log copy) among ss.
func devicesOf(ss []*Sighting) string {
	seen := map[string]bool{}
	var ds []string
	for _, s := range ss {
		if w := whoOf(s); !seen[w] {
			seen[w] = true
			ds = append(ds, w)
		}
	}
	slices.Sort(ds)
	if len(ds) > 16 {
		ds = append(ds[:16], fmt.Sprintf("and %d more", len(ds)-16))
	}
	return "seen by " + strings.Join(ds, ", ")
}

func whoOf(s *Sighting) string {
	if s.Device == "" {
		return "the log copy"
	}
	return s.Device
}

// graph holds the proven prefix relation: an edge from a checkpoint to
// a larger one a consistency proof (or the log copy) shows extends it.
type graph map[node][]node

func (g graph) edge(from, to node) {
	if from != to && !slices.Contains(g[from], to) {
		g[from] = append(g[from], to)
	}
}

// reverse is g with its edges turned around.
func (g graph) reverse() graph {
	rev := graph{}
	for from, tos := range g {
		for _, to := range tos {
			rev[to] = append(rev[to], from)
		}
	}
	return rev
}

// below returns top and every checkpoint from which edges of g lead to
// it (rev is g.reverse()).
func (rev graph) below(top node) map[node]bool {
	seen := map[node]bool{top: true}
	queue := []node{top}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, p := range rev[n] {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return seen
}
