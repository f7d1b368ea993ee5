package archive_test

import (
	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive"
)

func verifyNote(a *archive.Archive, signed string) (*note.Note, error) {
	v, err := note.NewVerifier(a.VerifierKey())
	if err != nil {
		return nil, err
	}
	return note.Open([]byte(signed), note.VerifierList(v))
}
