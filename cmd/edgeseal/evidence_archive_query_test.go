package main

import "testing"

// TestArchiveQueryCase: with --archive, --case passes --device and
// --principal on for the archive to narrow the case by.
func TestArchiveQueryCase(t *testing.T) {
	q, what, err := archiveQuery(nil, "site1/dev1", "alice", "", "", "C-7")
	if err != nil || q.Get("case") != "C-7" || q.Get("device") != "site1/dev1" || q.Get("principal") != "alice" || what != "legal-hold case C-7 device site1/dev1 principal alice" {
		t.Fatalf("%v %q %v", q, what, err)
	}
	q, _, err = archiveQuery(nil, "", "", "", "", "C-7")
	if err != nil || q.Encode() != "case=C-7" {
		t.Fatalf("%v %v", q, err)
	}
}
