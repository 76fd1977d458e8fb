package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// ErrUnknownKey is returned by Authenticate when a token matches no key.
var ErrUnknownKey = errors.New("unknown API key")

// maxTokenLen bounds the token we are willing to hash; real tokens are ~75
// characters.
const maxTokenLen = 512

// reloadEvery is how often Authenticate may stat the key file at most.
const reloadEvery = time.Second

// KeyRecord is one entry of the key file. The token itself is never stored.
type KeyRecord struct {
	// ID identifies the key in logs and admin commands.
	ID string `json:"id"`
	// Workspace the key belongs to; empty for a cluster-wide service key.
	Workspace string `json:"workspace"`
	// Role is the Role.String name.
	Role string `json:"role"`
	// Hash is the hex SHA-256 of the token.
	Hash string `json:"hash"`
	// CreatedAt is when Create made the key.
	CreatedAt time.Time `json:"created_at"`
}

// ClusterWide reports whether r is a cluster-wide service key (see
// Principal.ClusterWide).
func (r KeyRecord) ClusterWide() bool { return r.Role == RoleService.String() && r.Workspace == "" }

// ClusterWideIDPrefix starts the id of every cluster-wide service key made
// by Create, so that the id alone, in logs, metrics and `cairn keys list`,
// says what the key may do.
const ClusterWideIDPrefix = "key_cluster_"

// keyFile is the JSON layout of the key file.
type keyFile struct {
	Keys []KeyRecord `json:"keys"`
}

type entry struct {
	hash [sha256.Size]byte
	p    Principal
}

// Keyring is a file-backed set of hashed API keys. It is safe for concurrent
// use, and it reloads the file (at most once per second) when the file's
// modification time or size changes, so keys created by another process
// (the CLI) take effect without a restart.
type Keyring struct {
	path  string
	clock clock.Clock

	mu        sync.Mutex
	entries   []entry
	records   []KeyRecord
	checked   time.Time // last stat, by clock
	modTime   time.Time
	size      int64
	info      fs.FileInfo // for os.SameFile: an atomic rename changes the inode
	exists    bool
	reloadErr error
}

// LoadKeyring opens the key file at path with the real clock. A missing file
// is an empty keyring; it is created by the first Create.
func LoadKeyring(path string) (*Keyring, error) {
	return NewKeyring(path, clock.Real{})
}

// NewKeyring is LoadKeyring with an injected clock, which paces reloads.
func NewKeyring(path string, clk clock.Clock) (*Keyring, error) {
	if path == "" {
		return nil, errors.New("load keyring: empty path")
	}
	k := &Keyring{path: path, clock: clk}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.loadLocked(); err != nil {
		return nil, err
	}
	k.checked = clk.Now()
	return k, nil
}

// Path returns the key file's path.
func (k *Keyring) Path() string { return k.path }

// loadLocked reads and parses the file, replacing the in-memory keys only
// when the whole file is valid.
func (k *Keyring) loadLocked() error {
	fi, err := os.Stat(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		k.entries, k.records, k.exists = nil, nil, false
		k.modTime, k.size, k.info = time.Time{}, 0, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat key file: %w", err)
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("read key file: %w", err)
	}
	records, entries, err := parseKeyFile(data)
	if err != nil {
		return fmt.Errorf("load key file %s: %w", k.path, err)
	}
	k.records, k.entries, k.exists = records, entries, true
	k.modTime, k.size, k.info = fi.ModTime(), fi.Size(), fi
	return nil
}

// parseKeyFile decodes and validates the key file contents.
func parseKeyFile(data []byte) ([]KeyRecord, []entry, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("decode JSON: %w", err)
	}
	entries := make([]entry, 0, len(f.Keys))
	for i, r := range f.Keys {
		role, err := ParseRole(r.Role)
		if err != nil {
			return nil, nil, fmt.Errorf("keys[%d].role: %w", i, err)
		}
		if r.ID == "" {
			return nil, nil, fmt.Errorf("keys[%d].id: empty", i)
		}
		if r.Workspace == "" && role != RoleService {
			return nil, nil, fmt.Errorf("keys[%d].workspace: empty for a %s key", i, role)
		}
		h, err := hex.DecodeString(r.Hash)
		if err != nil || len(h) != sha256.Size {
			return nil, nil, fmt.Errorf("keys[%d].hash: not a hex SHA-256", i)
		}
		e := entry{p: Principal{KeyID: r.ID, Workspace: r.Workspace, Role: role}}
		copy(e.hash[:], h)
		entries = append(entries, e)
	}
	return f.Keys, entries, nil
}

// maybeReloadLocked re-reads the file when it changed, at most once per
// reloadEvery. A broken file keeps the previous keys (and is reported by Err)
// so that a bad edit does not lock everybody out.
func (k *Keyring) maybeReloadLocked() {
	now := k.clock.Now()
	if now.Sub(k.checked) < reloadEvery && !now.Before(k.checked) {
		return
	}
	k.checked = now
	fi, err := os.Stat(k.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !k.exists {
			return
		}
	case err != nil:
		k.reloadErr = fmt.Errorf("stat key file: %w", err)
		return
	case k.exists && os.SameFile(fi, k.info) && fi.ModTime().Equal(k.modTime) && fi.Size() == k.size:
		return
	}
	k.reloadErr = k.loadLocked()
}

// Err returns the error of the last failed reload, or nil.
func (k *Keyring) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadErr
}

// Authenticate returns the Principal of token, or ErrUnknownKey. Every stored
// hash is compared in constant time so that timing reveals nothing about
// which keys exist.
func (k *Keyring) Authenticate(token string) (Principal, error) {
	if token == "" || len(token) > maxTokenLen {
		return Principal{}, ErrUnknownKey
	}
	sum := sha256.Sum256([]byte(token))
	k.mu.Lock()
	k.maybeReloadLocked()
	entries := k.entries
	k.mu.Unlock()
	var found Principal
	match := 0
	for i := range entries {
		if subtle.ConstantTimeCompare(sum[:], entries[i].hash[:]) == 1 {
			found = entries[i].p
			match = 1
		}
	}
	if match == 0 {
		return Principal{}, ErrUnknownKey
	}
	return found, nil
}

// Create makes a new key for workspace with role, stores its hash and returns
// the token, which is shown once and never stored. A service key with an
// empty workspace is cluster-wide (Principal.ClusterWide), and its id starts
// with ClusterWideIDPrefix; every other key needs a workspace. The file is
// rewritten atomically with mode 0600.
func (k *Keyring) Create(workspace string, role Role) (string, error) {
	if role < RoleWrite || role > RoleService {
		return "", fmt.Errorf("create key: invalid role %d", int(role))
	}
	if workspace == "" && role != RoleService {
		return "", fmt.Errorf("create key: workspace is required for a %s key", role)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("create key: read random: %w", err)
	}
	idBytes := make([]byte, 8)
	if _, err := rand.Read(idBytes); err != nil {
		return "", fmt.Errorf("create key: read random: %w", err)
	}
	token := "cairn_" + role.String() + "_" + hex.EncodeToString(secret)
	sum := sha256.Sum256([]byte(token))
	id := "key_" + hex.EncodeToString(idBytes)
	if role == RoleService && workspace == "" {
		id = ClusterWideIDPrefix + hex.EncodeToString(idBytes)
	}
	rec := KeyRecord{
		ID:        id,
		Workspace: workspace,
		Role:      role.String(),
		Hash:      hex.EncodeToString(sum[:]),
		CreatedAt: k.clock.Now().UTC(),
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	// Re-read first so that keys added by another process are kept.
	if err := k.loadLocked(); err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	records := append(append([]KeyRecord(nil), k.records...), rec)
	if err := writeKeyFile(k.path, records); err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	if err := k.loadLocked(); err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	k.checked = k.clock.Now()
	return token, nil
}

// Revoke removes the key with the given id. It returns ErrUnknownKey when no
// key has that id.
func (k *Keyring) Revoke(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.loadLocked(); err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	var keep []KeyRecord
	for _, r := range k.records {
		if r.ID != id {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(k.records) {
		return fmt.Errorf("revoke key %q: %w", id, ErrUnknownKey)
	}
	if err := writeKeyFile(k.path, keep); err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	if err := k.loadLocked(); err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	return nil
}

// Keys returns the stored records (hashes only), in file order.
func (k *Keyring) Keys() []KeyRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.maybeReloadLocked()
	return append([]KeyRecord(nil), k.records...)
}

// writeKeyFile replaces path atomically: a reader sees the old or the new
// file, never a torn one.
func writeKeyFile(path string, records []KeyRecord) error {
	if records == nil {
		records = []KeyRecord{}
	}
	data, err := json.MarshalIndent(keyFile{Keys: records}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode key file: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key file dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temp key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod temp key file: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write temp key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync temp key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temp key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename key file: %w", err)
	}
	return nil
}

// StaticKeys is an in-memory Authenticator from token to Principal, for tests
// and embedded setups that do not need a key file.
type StaticKeys map[string]Principal

// Authenticate returns the Principal of token, or ErrUnknownKey.
func (s StaticKeys) Authenticate(token string) (Principal, error) {
	var found Principal
	match := 0
	for t, p := range s {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			found, match = p, 1
		}
	}
	if match == 0 {
		return Principal{}, ErrUnknownKey
	}
	return found, nil
}
