package relayconn

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// maxDirectoryChunks is the most chunks a directory of the largest size
// can take.
const maxDirectoryChunks = (keys.MaxDirectorySize + proto.DirectoryChunkSize - 1) / proto.DirectoryChunkSize

// dirFlight runs one directory download at a time. A caller shares a
// download only if it began after the caller asked: one already running
// may have read the relay's directory before the relay reloaded a newer
// one, so the caller waits for it and then shares (or starts) the next.
type dirFlight struct {
	mu   sync.Mutex
	call *dirCall
	// waiting, if set (by tests), is called when a caller finds a
	// download running and waits for it to end.
	waiting func()
}

type dirCall struct {
	done chan struct{}
	data []byte
	err  error
}

// Directory downloads the signed directory the relay serves, unverified:
// the caller verifies it against its pinned root. The size is checked as
// it arrives: the announced size and chunk count must fit
// [keys.MaxDirectorySize], every chunk but the last must be exactly
// proto.DirectoryChunkSize and the chunks must add up to the announced
// size, or the download fails with ErrHostile before more is read.
func (c *Conn) Directory(ctx context.Context) ([]byte, error) {
	f := &c.dirOnce
	f.mu.Lock()
	if before := f.call; before != nil {
		waiting := f.waiting
		f.mu.Unlock()
		if waiting != nil {
			waiting()
		}
		select {
		case <-before.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	if call := f.call; call != nil { // began after this call did
		f.mu.Unlock()
		select {
		case <-call.done:
			return call.data, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &dirCall{done: make(chan struct{})}
	f.call = call
	f.mu.Unlock()
	call.data, call.err = c.directory(ctx)
	f.mu.Lock()
	f.call = nil
	f.mu.Unlock()
	close(call.done)
	return call.data, call.err
}

func (c *Conn) directory(ctx context.Context) ([]byte, error) {
	var buf []byte
	var chunks, size int
	hostile := func(format string, args ...any) error {
		return fmt.Errorf("%w: directory: %s", ErrHostile, fmt.Sprintf(format, args...))
	}
	for i := 0; i == 0 || i < chunks; i++ {
		m, err := c.request(ctx, proto.SvcDirTarget, []byte(strconv.Itoa(i)))
		if err != nil {
			return nil, fmt.Errorf("fetching the directory: %w", err)
		}
		if m.Header.Get(proto.HeaderDirChunks) == "" {
			r, err := proto.ParseSvcReply(m.Data)
			if r == nil || err == nil {
				return nil, hostile("an answer that is neither a chunk nor a refusal")
			}
			return nil, fmt.Errorf("fetching the directory: %w", err)
		}
		n, err1 := strconv.Atoi(m.Header.Get(proto.HeaderDirChunks))
		sz, err2 := strconv.Atoi(m.Header.Get(proto.HeaderDirSize))
		switch {
		case err1 != nil || err2 != nil || n < 1 || n > maxDirectoryChunks || sz < 1 || sz > keys.MaxDirectorySize:
			return nil, hostile("announces %q chunks and %q bytes", m.Header.Get(proto.HeaderDirChunks), m.Header.Get(proto.HeaderDirSize))
		case n != (sz+proto.DirectoryChunkSize-1)/proto.DirectoryChunkSize:
			return nil, hostile("%d chunks cannot hold %d bytes", n, sz)
		case i == 0:
			chunks, size = n, sz
			// Grown as chunks arrive: a relay that announces the largest
			// size and then stalls costs one chunk, not the whole size.
			buf = make([]byte, 0, min(size, proto.DirectoryChunkSize))
		case n != chunks || sz != size:
			return nil, fmt.Errorf("fetching the directory: it changed while being fetched; try again")
		}
		want := proto.DirectoryChunkSize
		if i == chunks-1 {
			want = size - i*proto.DirectoryChunkSize
		}
		if len(m.Data) != want {
			return nil, hostile("chunk %d has %d bytes, want %d", i, len(m.Data), want)
		}
		buf = append(buf, m.Data...)
	}
	return buf, nil
}
