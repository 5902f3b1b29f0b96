package client

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// store is a client's state on disk, encrypted at rest under a key derived
// from the identity, so a seized device without the passphrase shows only
// file sizes. Each file's name is authenticated with its contents, so files
// cannot be swapped for one another.
//
//	<dir>/directory.yaml      the signed directory (public)
//	<dir>/seen.log            ids already delivered, one sealed record each
//	<dir>/cases.log           the case threads, one sealed record per change
//	<dir>/outbox/<id>.enc     envelopes waiting for the relay
type store struct {
	dir  string
	aead interface {
		Seal(dst, nonce, plaintext, ad []byte) []byte
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	}
	now func() time.Time
	// nameKey keys the hashes that name outbox files.
	nameKey []byte

	logMu sync.Mutex
	logs  map[string]*os.File // open append handles of the record logs

	mu      sync.Mutex
	seen    map[routing.ID]time.Time // id → forget after
	seenLog *os.File
	seenN   int // records in seen.log, live or not
}

// seenRetention is how long an id stays in the seen-set. The relay keeps
// envelopes for 30 days by default; a client refuses anything created
// longer ago than this, so an id it has forgotten can never be replayed.
const seenRetention = 90 * 24 * time.Hour

func openStore(dir string, id *keys.Identity, now func() time.Time) (*store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "outbox"), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	aead, err := chacha20poly1305.NewX(id.DeriveKey("client-state"))
	if err != nil {
		return nil, err
	}
	s := &store{dir: dir, aead: aead, now: now, seen: map[routing.ID]time.Time{}, nameKey: id.DeriveKey("client-state-names"), logs: map[string]*os.File{}}
	if err := s.loadSeen(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) close() {
	s.mu.Lock()
	if s.seenLog != nil {
		s.seenLog.Close()
		s.seenLog = nil
	}
	s.mu.Unlock()
	s.logMu.Lock()
	for name, f := range s.logs {
		f.Close()
		delete(s.logs, name)
	}
	s.logMu.Unlock()
}

func (s *store) seal(name string, plain []byte) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plain)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(name))
}

func (s *store) open(name string, sealed []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("state file %s is damaged", name)
	}
	n := chacha20poly1305.NonceSizeX
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("state file %s does not decrypt (damaged, or from another identity)", name)
	}
	return pt, nil
}

// putJSON encrypts v as JSON into the named file, atomically.
func (s *store) putJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return keys.WriteFileAtomic(filepath.Join(s.dir, name), s.seal(name, b), 0o600, true)
}

// getJSON decrypts the named file into v; a missing file leaves v alone.
func (s *store) getJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pt, err := s.open(name, b)
	if err != nil {
		return err
	}
	return json.Unmarshal(pt, v)
}

// Seen-set records: nonce ‖ AEAD(id ‖ forget-after), fixed size, appended.
const seenRecordSize = chacha20poly1305.NonceSizeX + routing.IDSize + 8 + chacha20poly1305.Overhead

func (s *store) loadSeen() error {
	path := filepath.Join(s.dir, "seen.log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	now := s.now()
	r := bufio.NewReader(f)
	rec := make([]byte, seenRecordSize)
	var good int64
	for {
		if _, err := io.ReadFull(r, rec); err != nil {
			break
		}
		good += seenRecordSize
		s.seenN++
		pt, err := s.open("seen", rec)
		if err != nil {
			continue
		}
		forget := time.Unix(int64(binary.BigEndian.Uint64(pt[routing.IDSize:])), 0)
		if forget.After(now) {
			s.seen[routing.ID(pt[:routing.IDSize])] = forget
		}
	}
	// A torn final record (a crash mid-append) is cut off, so the next
	// record starts on a record boundary. Its message was not acknowledged
	// to the relay, so it will be delivered again and recorded then.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return err
	}
	s.seenLog = f
	if s.seenN > 2*len(s.seen)+1024 {
		return s.compactSeen()
	}
	return nil
}

// compactSeen rewrites seen.log with only the live ids.
func (s *store) compactSeen() error {
	var buf []byte
	for id, forget := range s.seen {
		buf = append(buf, s.seenRecord(id, forget)...)
	}
	path := filepath.Join(s.dir, "seen.log")
	if err := keys.WriteFileAtomic(path, buf, 0o600, true); err != nil {
		return err
	}
	s.seenLog.Close()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.seenLog, s.seenN = f, len(s.seen)
	return nil
}

func (s *store) seenRecord(id routing.ID, forget time.Time) []byte {
	pt := make([]byte, routing.IDSize+8)
	copy(pt, id[:])
	binary.BigEndian.PutUint64(pt[routing.IDSize:], uint64(forget.Unix()))
	return s.seal("seen", pt)
}

// hasSeen reports whether id was already delivered.
func (s *store) hasSeen(id routing.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[id]
	return ok
}

// markSeen records ids durably (one write and one fsync for the batch)
// before the caller acknowledges them to the relay.
func (s *store) markSeen(ids []routing.ID) error {
	if len(ids) == 0 {
		return nil
	}
	forget := s.now().Add(seenRetention)
	var buf []byte
	for _, id := range ids {
		buf = append(buf, s.seenRecord(id, forget)...)
	}
	s.mu.Lock()
	f := s.seenLog
	_, err := f.Write(buf)
	if err == nil {
		for _, id := range ids {
			s.seen[id] = forget
		}
		s.seenN += len(ids)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("recording delivered messages: %w", err)
	}
	return f.Sync()
}

// An outboxEntry is a message waiting for the relay. It keeps the body so
// that an envelope that waited longer than the relay's freshness window
// can be sealed again under the same message id.
type outboxEntry struct {
	ID       routing.ID `json:"id"`
	Target   string     `json:"target"` // ingest target, e.g. to.ug.urgent
	Envelope []byte     `json:"envelope"`
	Body     []byte     `json:"body"`
	Country  string     `json:"country"`
	Priority string     `json:"priority"`
	Share    bool       `json:"share"` // sealed to partners, for the bridge
	// To, when set, are the recipients' public identities (a reply to a
	// defender); otherwise the recipients are the missions covering Country.
	To     []string  `json:"to,omitempty"`
	Kind   string    `json:"kind"`
	Queued time.Time `json:"queued"`
	// toIDs are To, parsed, while the entry is in memory.
	toIDs []*keys.PublicIdentity
}

// outboxName names an entry's file by a keyed hash of its message id and
// share flag: the id is what the relay stores in the clear, so a file
// named by it would tie a seized device to an envelope.
func (s *store) outboxName(id routing.ID, share bool) string {
	m := hmac.New(sha256.New, s.nameKey)
	m.Write(id[:])
	if share {
		m.Write([]byte{1})
	}
	return "outbox/" + hex.EncodeToString(m.Sum(nil)[:16]) + ".enc"
}

func (s *store) putOutbox(e *outboxEntry) error { return s.putJSON(s.outboxName(e.ID, e.Share), e) }

func (s *store) removeOutbox(id routing.ID, share bool) error {
	err := os.Remove(filepath.Join(s.dir, s.outboxName(id, share)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// listOutbox returns the waiting entries, oldest first.
func (s *store) listOutbox() ([]*outboxEntry, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "outbox", "*.enc"))
	if err != nil {
		return nil, err
	}
	var out []*outboxEntry
	for _, n := range names {
		var e outboxEntry
		if err := s.getJSON("outbox/"+filepath.Base(n), &e); err != nil {
			return nil, err
		}
		out = append(out, &e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Queued.Before(out[j].Queued) })
	return out, nil
}

// Record logs: length-prefixed sealed records, appended and fsynced one at
// a time, so a change costs one small write however long the history is.
// A torn final record (a crash mid-append) is ignored on reading.

// maxLogRecord bounds one record: a case entry is a few KB at most.
const maxLogRecord = 1 << 20

// appendLog appends records in one write; with durable it also fsyncs.
func (s *store) appendLog(name string, durable bool, recs ...[]byte) error {
	var buf []byte
	for _, rec := range recs {
		sealed := s.seal(name, rec)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(sealed)))
		buf = append(buf, sealed...)
	}
	s.logMu.Lock()
	f, ok := s.logs[name]
	if !ok {
		var err error
		if f, err = os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			s.logMu.Unlock()
			return err
		}
		s.logs[name] = f
	}
	_, err := f.Write(buf)
	s.logMu.Unlock()
	if err != nil || !durable {
		return err
	}
	// Outside the lock: concurrent writers share one fsync.
	return f.Sync()
}

// readLog returns the log's records. A torn or undecryptable tail (a
// crash mid-append) is cut off, so the next append starts on a record
// boundary and the records after it stay readable.
func (s *store) readLog(name string) ([][]byte, error) {
	path := filepath.Join(s.dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	good := 0
	for rest := b; len(rest) >= 4; {
		n := int(binary.BigEndian.Uint32(rest))
		if n > maxLogRecord || len(rest) < 4+n {
			break
		}
		pt, err := s.open(name, rest[4:4+n])
		if err != nil {
			break
		}
		out = append(out, pt)
		rest = rest[4+n:]
		good += 4 + n
	}
	if good < len(b) {
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rewriteLog replaces a log with recs, atomically.
func (s *store) rewriteLog(name string, recs [][]byte) error {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if f, ok := s.logs[name]; ok {
		f.Close()
		delete(s.logs, name)
	}
	var buf []byte
	for _, r := range recs {
		sealed := s.seal(name, r)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(sealed)))
		buf = append(buf, sealed...)
	}
	return keys.WriteFileAtomic(filepath.Join(s.dir, name), buf, 0o600, true)
}
