package relay

import "github.com/nats-io/nats.go"

// InternalConn is the relay's own connection, for tests that must speak
// for many mailboxes at once (it may publish on any ingest subject).
func InternalConn(r *Relay) *nats.Conn { return r.nc }

// HoldRetry is how long a failed release waits before it is tried again.
const HoldRetry = holdRetry
