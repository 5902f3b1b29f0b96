package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

//go:embed assets
var assets embed.FS

// Limits of what the page may send.
const (
	// maxRequestBody bounds an action's JSON: the longest text an officer
	// can send (a case report of 8000 characters of 4 bytes) and room.
	maxRequestBody = 64 << 10
	// wsQueue is how many pushes wait for a slow page before it is
	// disconnected (it reconnects and reloads the state).
	wsQueue = 64
	// wsPing keeps the WebSocket alive and tells the page, by its
	// absence, that the console is gone.
	wsPing = 10 * time.Second
	// receiveWait is the long-poll of the receive loops: a new alert is
	// handed over as soon as the relay stores it.
	receiveWait = 20 * time.Second
)

// A Console is the web console: the Office's cases served on loopback to
// a browser holding the session token, with live pushes.
type Console struct {
	office *Office
	token  string
	ln     net.Listener
	srv    *http.Server
	hub    *hub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares a console for o, listening on o.Config.Listen (loopback
// only; port 0 picks one).
func New(o *Office) (*Console, error) {
	if err := checkLoopback(o.Config.Listen); err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{office: o, token: base64.RawURLEncoding.EncodeToString(b), hub: newHub(), ctx: ctx, cancel: cancel}
	c.srv = &http.Server{Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	return c, nil
}

// Start listens and serves, and starts receiving from the relay.
func (c *Console) Start() error {
	ln, err := net.Listen("tcp", c.office.Config.Listen)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	c.ln = ln
	c.office.Store.OnChange(c.changed)
	c.wg.Add(4)
	go func() { defer c.wg.Done(); c.srv.Serve(ln) }()
	go func() { defer c.wg.Done(); c.receiveLoop(c.office.Receive) }()
	go func() { defer c.wg.Done(); c.receiveLoop(c.office.ReceiveMailbox) }()
	go func() { defer c.wg.Done(); c.watch() }()
	return nil
}

// URL is the address to open, with the session token: whoever has it
// has the console.
func (c *Console) URL() string { return "http://" + c.ln.Addr().String() + "/s/" + c.token + "/" }

// Addr is the address the console listens on.
func (c *Console) Addr() string { return c.ln.Addr().String() }

// Shutdown stops receiving and serving, and waits for both.
func (c *Console) Shutdown(ctx context.Context) error {
	c.cancel()
	c.office.Store.OnChange(nil)
	err := c.srv.Shutdown(ctx)
	c.hub.closeAll()
	c.wg.Wait()
	return err
}

// receiveLoop long-polls the relay into the store until the console
// stops. A failed batch is offered again by the relay; the loop waits for
// the connection and goes on.
func (c *Console) receiveLoop(recv func(context.Context, time.Duration) (client.Batch, error)) {
	backoff := 100 * time.Millisecond
	for c.ctx.Err() == nil {
		b, err := recv(c.ctx, receiveWait)
		if err == nil {
			err = b.Err
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			continue
		}
		if c.ctx.Err() != nil {
			return
		}
		c.office.logger().Info("receiving", "err", err)
		if errors.Is(err, client.ErrNotInDirectory) || errors.Is(err, client.ErrNoDirectory) {
			c.office.Client.RefreshDirectory(c.ctx)
		}
		t := time.NewTimer(backoff)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// watch catches up with the terminal's changes to the shared store and
// tells the pages when the relay connection comes and goes.
func (c *Console) watch() {
	t := time.NewTicker(c.office.Config.Poll)
	defer t.Stop()
	up := c.office.Client.Connected()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if err := c.office.Store.Refresh(); err != nil {
			c.office.logger().Warn("reading the store", "err", err)
		}
		if now := c.office.Client.Connected(); now != up {
			up = now
			c.hub.send(push{Type: "relay", Connected: up})
		}
	}
}

// changed pushes the changed cases to every page.
func (c *Console) changed(ids []routing.ID) {
	var out []summary
	all := false
	for _, id := range ids {
		if id.IsZero() {
			all = true
		}
	}
	if all {
		c.hub.send(push{Type: "reload"})
		return
	}
	for _, id := range ids {
		if k, err := c.office.Store.peek(id); err == nil {
			out = append(out, c.summarize(k))
		}
	}
	if len(out) > 0 {
		c.hub.send(push{Type: "cases", Cases: out, SentMS: time.Now().UnixMilli()})
	}
}

// handler serves everything under /s/<token>/, and nothing else.
func (c *Console) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.page)
	mux.HandleFunc("GET /assets/{file}", c.asset)
	mux.HandleFunc("GET /api/state", c.apiState)
	mux.HandleFunc("GET /api/cases/{id}", c.apiCase)
	mux.HandleFunc("GET /api/cases/{id}/rollup", c.apiRollUp)
	mux.HandleFunc("POST /api/cases/{id}/{action}", c.apiAction)
	mux.HandleFunc("POST /api/broadcasts", c.apiBroadcast)
	mux.HandleFunc("GET /ws", c.ws)
	prefix := "/s/" + c.token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w, r.Host)
		if !c.goodHost(r.Host) {
			// DNS rebinding: a page on another name that resolves here.
			http.Error(w, "wrong host", http.StatusMisdirectedRequest)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/s/")
		tok, sub, _ := strings.Cut(rest, "/")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(c.token)) != 1 {
			http.Error(w, "this console needs the address it printed at start (with its session token)", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead || strings.HasSuffix(r.URL.Path, "/ws") {
			// Every state-changing request and the WebSocket must come
			// from the console's own page.
			if !c.goodOrigin(r) {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
		}
		if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			// A cross-site form can post only form types.
			http.Error(w, "actions are JSON", http.StatusUnsupportedMediaType)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + sub
		_ = prefix
		mux.ServeHTTP(w, r2)
	})
}

// securityHeaders: a strict CSP (no inline script or style, nothing from
// anywhere else), no referrer (the URL holds the token), no framing, no
// caching.
func securityHeaders(w http.ResponseWriter, host string) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self' ws://"+host+"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (c *Console) goodHost(host string) bool {
	_, port, err := net.SplitHostPort(c.ln.Addr().String())
	if err != nil {
		return false
	}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		if host == h+":"+port {
			return true
		}
	}
	return false
}

func (c *Console) goodOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o != "" && o == "http://"+r.Host
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	c.asset(w, r.WithContext(context.WithValue(r.Context(), assetKey{}, "index.html")))
}

type assetKey struct{}

var contentTypes = map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	name, _ := r.Context().Value(assetKey{}).(string)
	if name == "" {
		name = r.PathValue("file")
	}
	b, err := fs.ReadFile(assets, "assets/"+path.Base(name))
	ct, ok := contentTypes[path.Ext(name)]
	if err != nil || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// hub fans pushes out to the open pages.
type hub struct {
	mu      sync.Mutex
	clients map[chan push]struct{}
	closed  bool
}

func newHub() *hub { return &hub{clients: map[chan push]struct{}{}} }

// A push is one message to the pages.
type push struct {
	Type      string    `json:"type"` // "cases", "relay", "reload"
	Cases     []summary `json:"cases,omitempty"`
	Connected bool      `json:"connected"`
	SentMS    int64     `json:"sent_ms,omitempty"`
}

func (h *hub) add() chan push {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan push, wsQueue)
	if h.closed {
		close(ch)
		return ch
	}
	h.clients[ch] = struct{}{}
	return ch
}

func (h *hub) remove(ch chan push) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[ch]; ok {
		delete(h.clients, ch)
		close(ch)
	}
}

func (h *hub) send(p push) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.clients {
		select {
		case ch <- p:
		default:
			// Too slow: cut it off; the page reconnects and reloads.
			delete(h.clients, ch)
			close(ch)
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.clients {
		delete(h.clients, ch)
		close(ch)
	}
}

// ws serves the live pushes. The Origin was checked by the handler;
// websocket.Accept checks it again against the request's host.
func (c *Console) ws(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1024)
	ctx := conn.CloseRead(r.Context())
	ch := c.hub.add()
	defer c.hub.remove(ch)
	hello, _ := json.Marshal(push{Type: "relay", Connected: c.office.Client.Connected()})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		return
	}
	ping := time.NewTicker(wsPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			conn.Close(websocket.StatusGoingAway, "console stopping")
			return
		case p, ok := <-ch:
			if !ok {
				conn.Close(websocket.StatusTryAgainLater, "reload")
				return
			}
			b, _ := json.Marshal(p)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// decode reads a JSON action body strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request: %w", err)
	}
	return nil
}

// statusOf maps an action's error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoCase):
		return http.StatusNotFound
	case errors.Is(err, message.ErrInvalid), errors.Is(err, message.ErrNoConsent), errors.Is(err, ErrUnknownOfficer),
		errors.Is(err, ErrNotAnAlert), errors.Is(err, ErrNotAMeeting), errors.Is(err, ErrNotAnObservation),
		errors.Is(err, ErrNotProposed), errors.Is(err, client.ErrNoReplyMailbox), errors.Is(err, client.ErrNoRecipient):
		return http.StatusUnprocessableEntity
	}
	return http.StatusBadGateway
}
