package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MaxRecord bounds one log record. A case entry or a seen-set record is a
// few kilobytes at most; a length beyond this is a torn or damaged record,
// and reading it must not allocate what a damaged length says.
const MaxRecord = 1 << 20

// A Log is a sealed append-only log of records. Every method must be
// called inside [Dir.Do].
type Log struct {
	d    *Dir
	name string
	path string

	f       *os.File // open for reading and appending; nil until first use
	off     int64    // how far Sync has read
	damaged int
}

// Log opens the log called name (without ".log"), creating it if needed.
// The same name returns the same Log.
func (d *Dir) Log(name string) (*Log, error) {
	if err := checkName(name + ".log"); err != nil {
		return nil, err
	}
	d.logsMu.Lock()
	defer d.logsMu.Unlock()
	if l, ok := d.logs[name]; ok {
		return l, nil
	}
	l := &Log{d: d, name: name, path: filepath.Join(d.path, name+".log")}
	d.logs[name] = l
	return l, nil
}

func (l *Log) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// reopen opens the file afresh and reads it from the start.
func (l *Log) reopen() error {
	l.close()
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	l.f, l.off, l.damaged = f, 0, 0
	return nil
}

// Sync reads what was appended since the last Sync — by this process or
// another — and hands each record to apply, in order. If the file was
// replaced since ([Log.Rewrite] by another process), it first calls reset
// and then hands over every record from the start. A torn record at the
// end (a crash mid-append) is cut off.
func (l *Log) Sync(reset func(), apply func(rec []byte) error) error {
	if err := l.d.mustHold(); err != nil {
		return err
	}
	if l.f == nil {
		if err := l.reopen(); err != nil {
			return err
		}
		reset()
	} else if replaced, err := l.replaced(); err != nil {
		return err
	} else if replaced {
		if err := l.reopen(); err != nil {
			return err
		}
		reset()
	}
	st, err := l.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < l.off {
		// Shorter than what was read: someone truncated it. Start over.
		l.off = 0
		reset()
	}
	buf := make([]byte, st.Size()-l.off)
	if _, err := l.f.ReadAt(buf, l.off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	good := 0
	for rest := buf; len(rest) >= 4; {
		n := int(binary.BigEndian.Uint32(rest))
		if n > MaxRecord+l.d.aead.NonceSize()+l.d.aead.Overhead() || len(rest) < 4+n {
			break // torn
		}
		pt, err := l.d.open(l.name, rest[4:4+n])
		rest = rest[4+n:]
		good += 4 + n
		if err != nil {
			l.damaged++
			continue
		}
		if err := apply(pt); err != nil {
			l.off += int64(good)
			return err
		}
	}
	l.off += int64(good)
	if l.off < st.Size() {
		// A torn tail: only a crash mid-append leaves one, since every
		// append runs under the lock we hold. Cut it so the next record
		// starts on a boundary.
		if err := l.f.Truncate(l.off); err != nil {
			return fmt.Errorf("state: cutting a torn record from %s: %w", l.path, err)
		}
	}
	return nil
}

// replaced reports whether the file at the log's path is no longer the one
// open.
func (l *Log) replaced() (bool, error) {
	st, err := os.Stat(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	ost, err := l.f.Stat()
	if err != nil {
		return false, err
	}
	return !os.SameFile(st, ost), nil
}

// Damaged is how many complete records the last reads could not decrypt.
func (l *Log) Damaged() int { return l.damaged }

// Append appends records in one write; with durable it also fsyncs. The
// caller must have called Sync since the log was last changed by anyone,
// so that its view includes what it appends after. Appended records are
// not handed to Sync's apply again.
func (l *Log) Append(durable bool, recs ...[]byte) error {
	if err := l.d.mustHold(); err != nil {
		return err
	}
	if l.f == nil {
		return errors.New("state: Append before Sync")
	}
	var buf []byte
	for _, rec := range recs {
		if len(rec) > MaxRecord {
			return fmt.Errorf("state: a %d-byte record for %s, the limit is %d", len(rec), l.name, MaxRecord)
		}
		sealed := l.d.seal(l.name, rec)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(sealed)))
		buf = append(buf, sealed...)
	}
	if _, err := l.f.Write(buf); err != nil {
		// A short write leaves a torn tail, cut by the next Sync.
		return fmt.Errorf("state: appending to %s: %w", l.path, err)
	}
	l.off += int64(len(buf))
	if !durable {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("state: syncing %s: %w", l.path, err)
	}
	return nil
}

// Rewrite replaces the log with recs, atomically (compaction). Other
// processes notice at their next Sync and reload.
func (l *Log) Rewrite(recs [][]byte) error {
	if err := l.d.mustHold(); err != nil {
		return err
	}
	var buf []byte
	for _, rec := range recs {
		sealed := l.d.seal(l.name, rec)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(sealed)))
		buf = append(buf, sealed...)
	}
	if err := writeAtomic(l.path, buf); err != nil {
		return err
	}
	if err := l.reopen(); err != nil {
		return err
	}
	l.off = int64(len(buf))
	return nil
}
