package relay

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"beacon/relay/proto"
)

// metrics are the relay's Prometheus metrics. Labels carry the stream,
// country and priority — what the routing header shows — and never a
// mailbox, a key or a payload.
type metrics struct {
	reg        *prometheus.Registry
	received   *prometheus.CounterVec
	stored     *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_relay_received_total", Help: "Publishes that passed the checks, before storage."},
			[]string{"stream", "country", "priority"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_relay_stored_total", Help: "Messages stored and acknowledged to their sender."},
			[]string{"stream", "country", "priority"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_relay_duplicates_total", Help: "Publishes of a message id already stored (not stored again)."},
			[]string{"stream"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_relay_refused_total", Help: "Publishes refused, by reason."},
			[]string{"reason"}),
	}
	m.reg.MustRegister(m.received, m.stored, m.duplicates, m.refused)
	for _, c := range proto.Codes {
		m.refused.WithLabelValues(string(c))
	}
	return m
}

// serverCollector reads connection and stream gauges from the embedded
// server at scrape time.
type serverCollector struct {
	srv                    func() *server.Server
	conns, msgs, bytes, cs *prometheus.Desc
}

func newServerCollector(srv func() *server.Server) *serverCollector {
	return &serverCollector{
		srv:   srv,
		conns: prometheus.NewDesc("beacon_relay_connections", "Open client connections.", nil, nil),
		msgs:  prometheus.NewDesc("beacon_relay_stream_messages", "Messages held per stream.", []string{"stream"}, nil),
		bytes: prometheus.NewDesc("beacon_relay_stream_bytes", "Bytes held per stream.", []string{"stream"}, nil),
		cs:    prometheus.NewDesc("beacon_relay_stream_consumers", "Consumers per stream.", []string{"stream"}, nil),
	}
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.msgs
	ch <- c.bytes
	ch <- c.cs
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.srv()
	if s == nil {
		return
	}
	// The relay's own in-process connection is not a client.
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(max(0, s.NumClients()-1)))
	info, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return
	}
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.GaugeValue, float64(st.State.Msgs), st.Name)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.State.Bytes), st.Name)
			ch <- prometheus.MustNewConstMetric(c.cs, prometheus.GaugeValue, float64(st.State.Consumers), st.Name)
		}
	}
}

// startHTTP serves /metrics and /healthz on the monitor address.
func (r *Relay) startHTTP() error {
	if r.cfg.Monitor == "" {
		return nil
	}
	r.metrics.reg.MustRegister(newServerCollector(func() *server.Server { return r.srv }))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-r.ready:
			fmt.Fprintln(w, "ok")
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	ln, err := net.Listen("tcp", r.cfg.Monitor)
	if err != nil {
		return fmt.Errorf("relay: monitor: %w", err)
	}
	r.httpLn = ln
	r.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("monitor", "err", err)
		}
	}()
	return nil
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
