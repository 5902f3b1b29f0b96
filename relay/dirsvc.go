package relay

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"beacon/relay/proto"
)

// serveDirectory answers directory requests with the raw signed directory,
// chunked. The relay hands out what it verified at load time; clients
// verify it again against the root they pinned, so a compromised relay
// can withhold the directory but not forge one.
func (r *Relay) serveDirectory() error {
	sub, err := r.nc.Subscribe(proto.DirectorySubject, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		out := nats.NewMsg(m.Reply)
		d := r.auth.directory()
		if d == nil {
			out.Header.Set(proto.HeaderError, "this relay serves no directory")
			r.nc.PublishMsg(out)
			return
		}
		i := 0
		if len(m.Data) > 0 {
			n, err := strconv.Atoi(string(m.Data))
			if err != nil || n < 0 {
				out.Header.Set(proto.HeaderError, "bad chunk index")
				r.nc.PublishMsg(out)
				return
			}
			i = n
		}
		chunks := (len(d.Raw) + proto.DirectoryChunkSize - 1) / proto.DirectoryChunkSize
		if i >= chunks {
			out.Header.Set(proto.HeaderError, "no such chunk")
			r.nc.PublishMsg(out)
			return
		}
		out.Header.Set(proto.HeaderDirChunks, strconv.Itoa(chunks))
		out.Header.Set(proto.HeaderDirSerial, strconv.FormatUint(d.Serial, 10))
		out.Header.Set(proto.HeaderDirSize, strconv.Itoa(len(d.Raw)))
		out.Data = d.Raw[i*proto.DirectoryChunkSize : min(len(d.Raw), (i+1)*proto.DirectoryChunkSize)]
		r.nc.PublishMsg(out)
	})
	if err != nil {
		return err
	}
	r.dirSub = sub
	return nil
}
