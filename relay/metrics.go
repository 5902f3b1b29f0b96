package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hrdbeacon/beacon/internal/buildinfo"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// metrics are the relay's Prometheus metrics. Labels carry the stream,
// country and priority — what the routing header shows — and never a
// mailbox, a key or a payload.
type metrics struct {
	reg      *prometheus.Registry
	received *prometheus.CounterVec
	refused  *prometheus.CounterVec
	junk     *prometheus.CounterVec
}

func newMetrics() *metrics {
	bi := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "beacon_build_info", Help: "Always 1; the labels say which build of Beacon is running.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion}})
	build.Set(1)
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_relay_received_total", Help: "Publishes that passed the checks, before storage."},
			[]string{"stream", "country", "priority"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_relay_refused_total", Help: "Publishes refused, by reason."},
			[]string{"reason"}),
	}
	m.junk = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "beacon_relay_junk_removed_total", Help: "Alerts removed because every mission of their country reported it could not open them."},
		[]string{"country"})
	m.reg.MustRegister(m.received, m.refused, m.junk, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range proto.Codes {
		m.refused.WithLabelValues(string(c))
	}
	return m
}

// serverCollector reads connection and stream figures from the embedded
// server at scrape time. What was stored is read from the streams, not
// counted on the way in: JetStream acknowledges stores to the senders
// directly, without the relay in between.
type serverCollector struct {
	srv                                    func() *server.Server
	held                                   func() map[string]map[string]uint64
	conns, msgs, bytes, cs, stored, bySubj *prometheus.Desc
}

func newServerCollector(srv func() *server.Server, held func() map[string]map[string]uint64) *serverCollector {
	return &serverCollector{
		srv:    srv,
		held:   held,
		conns:  prometheus.NewDesc("beacon_relay_connections", "Open client connections.", nil, nil),
		msgs:   prometheus.NewDesc("beacon_relay_stream_messages", "Messages held per stream.", []string{"stream"}, nil),
		bytes:  prometheus.NewDesc("beacon_relay_stream_bytes", "Bytes held per stream.", []string{"stream"}, nil),
		cs:     prometheus.NewDesc("beacon_relay_stream_consumers", "Consumers per stream.", []string{"stream"}, nil),
		stored: prometheus.NewDesc("beacon_relay_stored_total", "Messages ever stored per stream (its last sequence number).", []string{"stream"}, nil),
		bySubj: prometheus.NewDesc("beacon_relay_held_messages", "Alerts and shared alerts held, per country and priority.",
			[]string{"stream", "country", "priority"}, nil),
	}
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.msgs, c.bytes, c.cs, c.stored, c.bySubj} {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.srv()
	if s == nil {
		return
	}
	// The relay's own in-process connection is not a client.
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(max(0, s.NumClients()-internalConns)))
	info, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return
	}
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.GaugeValue, float64(st.State.Msgs), st.Name)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.State.Bytes), st.Name)
			ch <- prometheus.MustNewConstMetric(c.cs, prometheus.GaugeValue, float64(st.State.Consumers), st.Name)
			ch <- prometheus.MustNewConstMetric(c.stored, prometheus.CounterValue, float64(st.State.LastSeq), st.Name)
		}
	}
	for stream, subjects := range c.held() {
		for subj, n := range subjects {
			if s, err := proto.ParseSubject(subj); err == nil && s.Country != "" && s.Priority != 0 {
				ch <- prometheus.MustNewConstMetric(c.bySubj, prometheus.GaugeValue, float64(n), stream, s.Country, s.Priority.String())
			}
		}
	}
}

// heldBySubject reads, for ALERTS and SHARED, how many messages each
// country-and-priority subject holds.
func (r *Relay) heldBySubject() map[string]map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]map[string]uint64{}
	for _, name := range []string{proto.StreamAlerts, proto.StreamShared} {
		st, err := r.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
		if err != nil {
			continue
		}
		out[name] = info.State.Subjects
	}
	return out
}

// startHTTP serves the monitor: /metrics (Prometheus), /healthz, and
// nats-server's own /varz and /jsz, which the NATS Prometheus exporter and
// dashboards read. Every other nats-server endpoint is left out on
// purpose: /connz lists each client's address, NKey and subscriptions,
// /subsz and /accountz list subjects that hold mailboxes, /routez,
// /leafz and /gatewayz list peers' addresses. /jsz never includes
// consumers (their names hold mailboxes), and /healthz does not answer for
// a named stream or consumer (it would tell whether a mailbox was ever
// read).
func (r *Relay) startHTTP() error {
	if r.cfg.Monitor == "" {
		return nil
	}
	var tc *tls.Config
	if t := r.cfg.MonitorTLS; t != nil {
		var err error
		if tc, err = loadMutualTLS("monitor_tls", t, r.clock.Now()); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	ln, err := net.Listen("tcp", r.cfg.Monitor)
	if err != nil {
		return fmt.Errorf("relay: monitor: %w", err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	r.httpLn = ln
	r.http = &http.Server{Handler: r.monitorHandler(), ReadHeaderTimeout: 5 * time.Second,
		// net/http logs failed handshakes with the peer's address.
		ErrorLog: log.New(redactedLog{r.log.With("component", "monitor")}, "", 0)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("monitor", "err", err)
		}
	}()
	return nil
}

// redactedLog writes net/http's log lines to slog, with addresses, keys
// and mailboxes redacted as the server's own lines are.
type redactedLog struct{ l *slog.Logger }

func (w redactedLog) Write(p []byte) (int, error) {
	w.l.Warn(redact(strings.TrimSpace(string(p))))
	return len(p), nil
}

// Query parameters the monitor passes on to nats-server's handlers; any
// other is dropped. A parameter left out takes the handler's default.
var (
	jszParams     = []string{"acc", "accounts", "streams", "config", "leader-only", "offset", "limit", "raft"}
	healthzParams = []string{"js-enabled-only", "js-server-only", "js-meta-only"}
)

func (r *Relay) monitorHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /varz", r.srv.HandleVarz)
	mux.HandleFunc("GET /jsz", onlyParams(jszParams, r.srv.HandleJsz))
	mux.HandleFunc("GET /healthz", onlyParams(healthzParams, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-r.ready:
			r.srv.HandleHealthz(w, req)
		default:
			// The same shape as nats-server's own answer while unhealthy.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"unavailable","status_code":503,"error":"relay starting"}`)
		}
	}))
	return mux
}

// onlyParams passes a request on with only the allowed query parameters.
func onlyParams(allowed []string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		kept := url.Values{}
		for _, k := range allowed {
			if v, ok := q[k]; ok {
				kept[k] = v
			}
		}
		req2 := req.Clone(req.Context())
		req2.URL.RawQuery = kept.Encode()
		h(w, req2)
	}
}

// Gather returns the current metrics, for tests and the bench command.
func (r *Relay) Gather() (map[string]float64, error) {
	mfs, err := r.metrics.reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			}
		}
	}
	return out, nil
}
