package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hrdbeacon/beacon/relay/proto"
)

// metrics are the bridge's Prometheus metrics, per partner. Labels are
// partner ids and reasons: never a mailbox, a message id or a payload.
type metrics struct {
	reg                                                *prometheus.Registry
	forwarded, duplicates, retries, receipts, returned *prometheus.CounterVec
	dropped                                            *prometheus.CounterVec
	lastSuccess                                        *prometheus.GaugeVec
}

type partnerMetrics struct {
	forwarded, duplicates, retries, receipts, returned prometheus.Counter
	dropped                                            *prometheus.CounterVec
	lastSuccess                                        prometheus.Gauge
}

func newMetrics(b *Bridge) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "beacon_bridge_" + name, Help: help}, append([]string{"partner"}, labels...))
	}
	m := &metrics{
		reg:        prometheus.NewRegistry(),
		forwarded:  counter("forwarded_total", "Envelopes the partner's relay stored."),
		duplicates: counter("duplicates_total", "Envelopes delivered again that the partner's relay held already (after a crash or a lost acknowledgement)."),
		retries:    counter("retries_total", "Batches retried because the partner's relay (or the home relay) did not take them."),
		receipts:   counter("receipts_total", "Envelopes whose signed receipt the home relay stored."),
		returned:   counter("returned_total", "Partners' answers (acks, replies, ack tokens) carried back to the home relay."),
		dropped:    counter("dropped_total", "Envelopes not forwarded: out_of_scope (settled, never sent), refused (for good, by a relay), malformed.", "reason"),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "beacon_bridge_last_success_timestamp_seconds",
			Help: "When the partner's relay last stored a batch (Unix time); 0 if never."}, []string{"partner"}),
	}
	m.reg.MustRegister(m.forwarded, m.duplicates, m.retries, m.receipts, m.returned, m.dropped, m.lastSuccess,
		&stateCollector{b: b,
			pending: prometheus.NewDesc("beacon_bridge_pending", "Envelopes shared with the partner and not yet settled: waiting in SHARED or held by the bridge.", []string{"partner"}, nil),
			oldest: prometheus.NewDesc("beacon_bridge_oldest_pending_age_seconds",
				"Age of the oldest envelope the bridge holds and the partner's relay has not stored; 0 when none waits.", []string{"partner"}, nil),
			up: prometheus.NewDesc("beacon_bridge_partner_connected", "1 while the bridge is connected to the partner's relay.", []string{"partner"}, nil),
		},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) forPartner(id string) *partnerMetrics {
	pm := &partnerMetrics{forwarded: m.forwarded.WithLabelValues(id), duplicates: m.duplicates.WithLabelValues(id),
		retries: m.retries.WithLabelValues(id), receipts: m.receipts.WithLabelValues(id), returned: m.returned.WithLabelValues(id),
		dropped: m.dropped.MustCurryWith(prometheus.Labels{"partner": id}), lastSuccess: m.lastSuccess.WithLabelValues(id)}
	for _, r := range []string{"out_of_scope", "refused", "malformed"} {
		pm.dropped.WithLabelValues(r)
	}
	return pm
}

// stateCollector reads what waits at scrape time: the home relay counts
// what is pending for each partner, the forwarders know their oldest.
type stateCollector struct {
	b                   *Bridge
	pending, oldest, up *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
	ch <- c.up
}

// scrapeTimeout bounds the home relay's answer to one pending count.
const scrapeTimeout = 2 * time.Second

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.partners {
		id := p.cfg.ID
		if c.b.home != nil {
			ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
			n, err := c.b.home.Pending(ctx, proto.SharedSource(id))
			cancel()
			if err == nil {
				ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n), id)
			}
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, p.oldestAge().Seconds(), id)
		up := 0.0
		if p.t != nil && p.t.Connected() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, id)
	}
}

// Registry is the bridge's metrics registry, for embedding.
func (b *Bridge) Registry() *prometheus.Registry { return b.metrics.reg }

// MetricsAddr is the address serving /metrics, or "".
func (b *Bridge) MetricsAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

func (b *Bridge) startMetrics() error {
	if b.cfg.Metrics == "" {
		return nil
	}
	ln, err := net.Listen("tcp", b.cfg.Metrics)
	if err != nil {
		return fmt.Errorf("bridge: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	b.httpLn = ln
	b.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("metrics", "err", err)
		}
	}()
	return nil
}
