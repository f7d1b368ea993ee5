package demo

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/archive/api"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// AuditorFile is the file in the demo's dir that holds the password of
// its auditor account, AuditorUser, for the archive's dashboard.
const (
	AuditorFile = "auditor.password"
	AuditorUser = "auditor"
)

// auditorAccount gives the archive in adir (its users file,
// adir/users.json) the demo's auditor account with a new random password,
// writes the password to dir/AuditorFile (0600) and returns it. A demo
// run again in its dir resets the password.
func auditorAccount(adir, dir string) (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	users := api.OpenUsers(filepath.Join(adir, "users.json"))
	if err := users.Add(AuditorUser, []string{api.RoleAuditor}, pw, time.Now()); err != nil {
		if err2 := users.SetPassword(AuditorUser, pw, time.Now()); err2 != nil {
			return "", fmt.Errorf("demo: auditor account: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, AuditorFile), []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	return pw, nil
}
