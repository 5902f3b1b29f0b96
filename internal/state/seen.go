package state

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/routing"
)

// A Seen is a persistent seen-set: the ids of messages already delivered,
// each remembered for a retention period, on a [Log]. Every method but Has
// and Len must be called inside [Dir.Do].
type Seen struct {
	log       *Log
	retention time.Duration
	clock     clockwork.Clock

	ids     map[routing.ID]time.Time // id → forget after
	records int                      // records in the log, live or not
}

// seenRecordSize is one record's plaintext: the id and when to forget it.
const seenRecordSize = routing.IDSize + 8

// Seen opens the seen-set called name. An id is remembered for retention
// after it is added; the caller must refuse anything older than that, or
// a forgotten id could be replayed.
func (d *Dir) Seen(name string, retention time.Duration, clock clockwork.Clock) (*Seen, error) {
	l, err := d.Log(name)
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Seen{log: l, retention: retention, clock: clock, ids: map[routing.ID]time.Time{}}, nil
}

// Sync catches up with what this and other processes added, and compacts
// the log when most of its records are dead.
func (s *Seen) Sync() error {
	now := s.clock.Now()
	err := s.log.Sync(func() {
		s.ids, s.records = map[routing.ID]time.Time{}, 0
	}, func(rec []byte) error {
		s.records++
		if len(rec) != seenRecordSize {
			return nil // not a seen record: damaged, ignore
		}
		forget := time.Unix(int64(binary.BigEndian.Uint64(rec[routing.IDSize:])), 0)
		if forget.After(now) {
			s.ids[routing.ID(rec[:routing.IDSize])] = forget
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seen-set: %w", err)
	}
	for id, forget := range s.ids {
		if !forget.After(now) {
			delete(s.ids, id)
		}
	}
	if s.records > 2*len(s.ids)+1024 {
		recs := make([][]byte, 0, len(s.ids))
		for id, forget := range s.ids {
			recs = append(recs, seenRecord(id, forget))
		}
		if err := s.log.Rewrite(recs); err != nil {
			return fmt.Errorf("seen-set: compacting: %w", err)
		}
		s.records = len(recs)
	}
	return nil
}

// Has reports whether id was added, as of the last Sync or Add.
func (s *Seen) Has(id routing.ID) bool {
	_, ok := s.ids[id]
	return ok
}

// Len is how many ids are remembered.
func (s *Seen) Len() int { return len(s.ids) }

// Add records ids durably: one write and one fsync for them all.
func (s *Seen) Add(ids ...routing.ID) error {
	if len(ids) == 0 {
		return nil
	}
	forget := s.clock.Now().Add(s.retention).Truncate(time.Second).Add(time.Second)
	recs := make([][]byte, len(ids))
	for i, id := range ids {
		recs[i] = seenRecord(id, forget)
	}
	if err := s.log.Append(true, recs...); err != nil {
		return fmt.Errorf("recording delivered messages: %w", err)
	}
	for _, id := range ids {
		s.ids[id] = forget
	}
	s.records += len(ids)
	return nil
}

func seenRecord(id routing.ID, forget time.Time) []byte {
	b := make([]byte, seenRecordSize)
	copy(b, id[:])
	binary.BigEndian.PutUint64(b[routing.IDSize:], uint64(forget.Unix()))
	return b
}
