package api

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Roles.
const (
	RoleAuditor     = "auditor"
	RoleOperator    = "operator"
	RolePolicyAdmin = "policy-admin"
	// RoleDecryptor grants nothing alone: api.decrypt may name it as a
	// role allowed to decrypt a classification (with auditor, which
	// reads payloads and packs).
	RoleDecryptor = "decryptor"
	// RoleExporter is an agent-side role: it grants nothing at the
	// archive, and an account that has only it cannot sign in.
	RoleExporter = "exporter"
)

// Roles lists the roles an account may hold.
var Roles = []string{RoleAuditor, RoleOperator, RolePolicyAdmin, RoleDecryptor, RoleExporter}

// archiveRoles are the roles that grant something at the archive.
var archiveRoles = []string{RoleAuditor, RoleOperator, RolePolicyAdmin}

// sessionRoles are the roles a session keeps: the archive roles and
// decryptor (which needs one of them to sign in).
var sessionRoles = []string{RoleAuditor, RoleOperator, RolePolicyAdmin, RoleDecryptor}

// Argon2id parameters (RFC 9106): time 3, 64 MiB, 2 lanes, 16-byte salt,
// 32-byte hash.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 2
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Users file bounds.
const (
	MaxUsersFileSize = 1 << 20
	MaxPasswordLen   = 1024
	MinPasswordLen   = 12
	usersVersion     = 1
)

var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// User is an account of the users file.
type User struct {
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Hash     string   `json:"hash"` // PHC string, argon2id
	Disabled bool     `json:"disabled,omitempty"`
	Created  string   `json:"created,omitempty"`
	Changed  string   `json:"changed,omitempty"`
}

type usersFile struct {
	V     int    `json:"v"`
	Users []User `json:"users"`
}

// ErrBadCredentials: an unknown user, a wrong password or a disabled
// account (never told apart to the caller).
var ErrBadCredentials = errors.New("wrong user name or password")

// CheckUserName reports whether name is a valid account name.
func CheckUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("user name %.80q: want 1-64 of [a-z0-9._@-], starting with a letter or digit", name)
	}
	return nil
}

// CheckRoles reports whether every role is known.
func CheckRoles(roles []string) error {
	if len(roles) == 0 {
		return errors.New("no role")
	}
	for _, r := range roles {
		if !slices.Contains(Roles, r) {
			return fmt.Errorf("role %.40q: want one of %s", r, strings.Join(Roles, ", "))
		}
	}
	return nil
}

// HashPassword returns the argon2id PHC string of password.
func HashPassword(password string) (string, error) {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("password of %d bytes: want %d to %d", len(password), MinPasswordLen, MaxPasswordLen)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// parsePHC reads an argon2id PHC string, with bounded parameters.
func parsePHC(s string) (salt, key []byte, t, m uint32, p uint8, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, nil, 0, 0, 0, errors.New("not an argon2id hash")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) != parts[3] {
		return nil, nil, 0, 0, 0, errors.New("argon2id parameters")
	}
	if m < 8*1024 || m > 256*1024 || t < 1 || t > 16 || p < 1 || p > 16 {
		return nil, nil, 0, 0, 0, errors.New("argon2id parameters out of range")
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 || len(salt) > 64 {
		return nil, nil, 0, 0, 0, errors.New("argon2id salt")
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return nil, nil, 0, 0, 0, errors.New("argon2id hash")
	}
	return salt, key, t, m, p, nil
}

// verifyPassword checks password against a PHC string in constant time.
func verifyPassword(phc, password string) bool {
	salt, key, t, m, p, err := parsePHC(phc)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyHash is checked for unknown users, so that they cost the same.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("edgeseal-dummy-password")
	return h
})

// Users is the users file: read at each sign-in (so that `edgeseal
// archive users` changes take effect without a restart), written
// atomically.
type Users struct {
	path string
	mu   sync.Mutex
}

// OpenUsers returns the users file at path (it need not exist yet).
func OpenUsers(path string) *Users { return &Users{path: path} }

// Path is the users file's path.
func (u *Users) Path() string { return u.path }

// List reads every account; a missing file is no account.
func (u *Users) List() ([]User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f, err := u.read()
	if err != nil {
		return nil, err
	}
	return f.Users, nil
}

// read opens the file without following a symlink and refuses one that
// is not a regular file or that its group or others can read or write.
func (u *Users) read() (*usersFile, error) {
	fd, err := os.OpenFile(u.path, os.O_RDONLY|oNoFollow, 0)
	if errors.Is(err, os.ErrNotExist) {
		return &usersFile{V: usersVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("users file %s: not a regular file", u.path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("users file %s: mode %v, want 0600 (no access for group or others)", u.path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(fd, MaxUsersFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	return ParseUsersFile(data)
}

// ParseUsersFile reads a users file strictly: bounded, known members,
// version 1, valid names, roles and hashes, no name twice.
func ParseUsersFile(data []byte) (*usersFile, error) {
	if len(data) > MaxUsersFileSize {
		return nil, fmt.Errorf("users file of %d bytes: larger than %d", len(data), MaxUsersFileSize)
	}
	var f usersFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("users file: trailing data")
	}
	if f.V != usersVersion {
		return nil, fmt.Errorf("users file: version %d", f.V)
	}
	seen := map[string]bool{}
	for _, us := range f.Users {
		if err := CheckUserName(us.Name); err != nil {
			return nil, fmt.Errorf("users file: %w", err)
		}
		if seen[us.Name] {
			return nil, fmt.Errorf("users file: user %s twice", us.Name)
		}
		seen[us.Name] = true
		if err := CheckRoles(us.Roles); err != nil {
			return nil, fmt.Errorf("users file: user %s: %w", us.Name, err)
		}
		if _, _, _, _, _, err := parsePHC(us.Hash); err != nil {
			return nil, fmt.Errorf("users file: user %s: %w", us.Name, err)
		}
	}
	return &f, nil
}

func (u *Users) write(f *usersFile) error {
	if fi, err := os.Lstat(u.path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("users file %s: a symlink, refused", u.path)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(u.path), 0o750); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if err := fsutil.WriteFileAtomic(u.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	return nil
}

// update reads the file, applies fn and writes it back.
func (u *Users) update(fn func(f *usersFile) error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	f, err := u.read()
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return err
	}
	return u.write(f)
}

// Add adds an account.
func (u *Users) Add(name string, roles []string, password string, now time.Time) error {
	if err := CheckUserName(name); err != nil {
		return err
	}
	if err := CheckRoles(roles); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return u.update(func(f *usersFile) error {
		if slices.ContainsFunc(f.Users, func(x User) bool { return x.Name == name }) {
			return fmt.Errorf("user %s exists", name)
		}
		f.Users = append(f.Users, User{Name: name, Roles: slices.Compact(slices.Sorted(slices.Values(roles))), Hash: hash, Created: now.UTC().Format(time.RFC3339)})
		return nil
	})
}

// change applies fn to the named account.
func (u *Users) change(name string, fn func(*User) error) error {
	return u.update(func(f *usersFile) error {
		i := slices.IndexFunc(f.Users, func(x User) bool { return x.Name == name })
		if i < 0 {
			return fmt.Errorf("no user %.80q", name)
		}
		return fn(&f.Users[i])
	})
}

// SetPassword changes an account's password.
func (u *Users) SetPassword(name, password string, now time.Time) error {
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return u.change(name, func(us *User) error {
		us.Hash, us.Changed = hash, now.UTC().Format(time.RFC3339)
		return nil
	})
}

// SetRoles replaces an account's roles.
func (u *Users) SetRoles(name string, roles []string, now time.Time) error {
	if err := CheckRoles(roles); err != nil {
		return err
	}
	return u.change(name, func(us *User) error {
		us.Roles, us.Changed = slices.Compact(slices.Sorted(slices.Values(roles))), now.UTC().Format(time.RFC3339)
		return nil
	})
}

// Disable disables an account (it can no longer sign in; its sessions
// end at their next use).
func (u *Users) Disable(name string, now time.Time) error {
	return u.change(name, func(us *User) error {
		us.Disabled, us.Changed = true, now.UTC().Format(time.RFC3339)
		return nil
	})
}

// Authenticate checks name and password; ErrBadCredentials for an
// unknown user, a wrong password or a disabled account.
func (u *Users) Authenticate(name, password string) (*User, error) {
	if len(password) > MaxPasswordLen {
		return nil, ErrBadCredentials
	}
	list, err := u.List()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(list, func(x User) bool { return x.Name == name })
	if i < 0 {
		verifyPassword(dummyHash(), password)
		return nil, ErrBadCredentials
	}
	us := list[i]
	if !verifyPassword(us.Hash, password) || us.Disabled {
		return nil, ErrBadCredentials
	}
	return &us, nil
}

// lookup returns the named account as the file says now (nil: gone).
func (u *Users) lookup(name string) (*User, error) {
	list, err := u.List()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(list, func(x User) bool { return x.Name == name })
	if i < 0 {
		return nil, nil
	}
	return &list[i], nil
}

// archiveRolesOf are the roles of roles that grant something here (and
// decryptor); none when no archive role is among them.
func archiveRolesOf(roles []string) []string {
	var out []string
	base := false
	for _, r := range roles {
		if slices.Contains(sessionRoles, r) && !slices.Contains(out, r) {
			out = append(out, r)
			base = base || slices.Contains(archiveRoles, r)
		}
	}
	if !base {
		return nil
	}
	return out
}
