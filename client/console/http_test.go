package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

func do(t *testing.T, method, url string, hdr map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestHTTPSecurity: the console answers only with its session token, only
// to its own origin for anything that changes state or pushes, never to a
// cross-site form, and its page carries a strict CSP.
func TestHTTPSecurity(t *testing.T) {
	tb := newTestbed(t)
	c, o := tb.console("nl-kampala")
	base := c.URL()
	origin := "http://" + c.Addr()
	json := map[string]string{"Content-Type": "application/json", "Origin": origin}

	res := do(t, "GET", base, nil, "")
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != 200 || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self';") ||
		strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("page: %d, CSP %q", res.StatusCode, csp)
	}
	if res.Header.Get("Referrer-Policy") != "no-referrer" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", res.Header)
	}
	if res := do(t, "GET", base+"assets/app.js", nil, ""); res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}

	// Without the token, or with a wrong one: nothing.
	for _, u := range []string{"http://" + c.Addr() + "/", "http://" + c.Addr() + "/api/state", "http://" + c.Addr() + "/s/wrong/api/state",
		strings.Replace(base, "/s/", "/s/x", 1) + "api/state"} {
		if res := do(t, "GET", u, nil, ""); res.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without the token: %d", u, res.StatusCode)
		}
	}
	// A name that resolves to loopback (DNS rebinding) is refused.
	if res := do(t, "GET", base+"api/state", map[string]string{"Host": "evil.example:80"}, ""); res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", res.StatusCode)
	}

	// A case to act on.
	def := tb.defender()
	sent, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention, Summary: "Taken at the airport"})
	if err != nil {
		t.Fatal(err)
	}
	tb.waitCase(o, sent.ID)
	ack := base + "api/cases/" + sent.ID.String() + "/note"
	body := `{"officer":"avries","text":"called the lawyer"}`
	for name, hdr := range map[string]map[string]string{
		"no Origin":        {"Content-Type": "application/json"},
		"another Origin":   {"Content-Type": "application/json", "Origin": "http://evil.example"},
		"cross-site form":  {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
		"same-origin form": {"Content-Type": "text/plain", "Origin": origin},
		"null Origin":      {"Content-Type": "application/json", "Origin": "null"},
	} {
		if res := do(t, "POST", ack, hdr, body); res.StatusCode != http.StatusForbidden && res.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("%s: %d, want a refusal", name, res.StatusCode)
		}
	}
	if k, _ := o.Store.Case(sent.ID); len(k.Notes) != 0 {
		t.Fatalf("a refused request changed the case: %+v", k.Notes)
	}
	if res := do(t, "POST", ack, json, body); res.StatusCode != 200 {
		t.Fatalf("a same-origin JSON action: %d", res.StatusCode)
	}
	if k, _ := o.Store.Case(sent.ID); len(k.Notes) != 1 || k.Notes[0].Text != "called the lawyer" {
		t.Fatalf("notes %+v", k.Notes)
	}
	if res := do(t, "POST", base+"api/cases/"+sent.ID.String()+"/note", json, `{"officer":"nobody","text":"x"}`); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("an unknown officer: %d", res.StatusCode)
	}

	// The WebSocket: refused from another origin, and without the token.
	ws := strings.Replace(base, "http://", "ws://", 1) + "ws"
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	for name, u := range map[string]string{"another origin": ws, "no token": "ws://" + c.Addr() + "/ws"} {
		_, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
		if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
			t.Errorf("WebSocket, %s: %v %v", name, res, err)
		}
	}
	conn, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if p := readPush(t, ctx, conn); p.Type != "relay" || !p.Connected {
		t.Fatalf("hello %+v", p)
	}
	// A push arrives for a new alert, with no request from the page.
	sent2, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.High, Category: message.CategoryRaid, Summary: "Office raided"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := readPush(t, ctx, conn)
		if p.Type == "cases" && len(p.Cases) == 1 && p.Cases[0].ID == sent2.ID {
			if p.Cases[0].Title != "Office raided" || p.Cases[0].State != StateNew || p.Cases[0].DueMS == 0 {
				t.Fatalf("pushed %+v", p.Cases[0])
			}
			break
		}
	}
}

func readPush(t *testing.T, ctx context.Context, conn *websocket.Conn) push {
	t.Helper()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var p push
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
