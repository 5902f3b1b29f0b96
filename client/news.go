package client

import (
	"context"
	"crypto/sha256"
	"sort"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// A Bulletin is a verified broadcast.
type Bulletin struct {
	ID      routing.ID // the broadcast's message id, which answers refer to
	Mission string     // directory id of the signing mission
	Country string
	Created time.Time
	// Broadcast is what the mission announced; its ValidUntil, if set, is
	// still ahead.
	Broadcast *message.Broadcast
}

// News is what one news request found: the current, verified broadcasts,
// one of each, and counts of what was left out.
type News struct {
	// Bulletins are oldest first, at most MaxBulletinsPerMission of
	// each mission's newest for each country.
	Bulletins []*Bulletin
	// Expired were verified but are past their valid_until.
	Expired int
	// Duplicates were copies of a broadcast already kept: the same public
	// message again, or the same mission's same text signed again.
	Duplicates int
	// Unverified were not signed by a mission covering their country in
	// the directory held, malformed, or dated in the future.
	Unverified int
	// Capped were beyond MaxBulletinsPerMission for their mission.
	Capped int
}

// Limits on broadcasts, which anyone who holds a mission's key — or a
// relay replaying what one signed — can repeat at will.
const (
	// MaxBulletinsPerMission bounds what one mission shows in one
	// country: a screen of announcements, the newest.
	MaxBulletinsPerMission = 20
	// bulletinClockSkew is how far in the future a broadcast may be
	// dated: a mission's clock a little fast. One dated further would
	// stay at the top of every list.
	bulletinClockSkew = 5 * time.Minute
)

// News returns the current verified broadcasts for cc ("" for every
// country), oldest first (see [Client.ReadNews]).
func (c *Client) News(ctx context.Context, cc string) ([]*Bulletin, error) {
	n, err := c.ReadNews(ctx, cc)
	if err != nil {
		return nil, err
	}
	return n.Bulletins, nil
}

// ReadNews fetches the broadcasts for cc ("" for every country) and keeps
// those a mission covering the broadcast's country signed, according to
// the directory, that have not expired, once each, at most
// MaxBulletinsPerMission per mission and country.
func (c *Client) ReadNews(ctx context.Context, cc string) (*News, error) {
	if err := c.WaitConnected(ctx); err != nil {
		return nil, err
	}
	d, err := c.Directory()
	if err != nil {
		return nil, err
	}
	// Every country of the directory in turn, rather than all at once:
	// the relay keeps each country's newest broadcasts, as many as one
	// read returns, so a read per country always reaches the newest,
	// where one read of all would stop at the oldest of the busiest.
	countries := []string{cc}
	if cc == "" {
		countries = d.Countries()
	}
	type fetched struct {
		cc   string
		data []byte
	}
	var msgs []fetched
	for _, want := range countries {
		got, err := c.conn.News(ctx, want)
		if err != nil {
			return nil, err
		}
		for _, m := range got {
			msgs = append(msgs, fetched{want, m.Data})
		}
	}
	now := c.clock.Now()
	n := &News{}
	type text struct {
		signer keys.Fingerprint
		body   [32]byte
	}
	ids := map[routing.ID]bool{}
	texts := map[text]bool{}
	var kept []*Bulletin
	for _, m := range msgs {
		b, pm := verifyBulletin(d, m.data)
		switch {
		case b == nil || b.Country != m.cc || b.Created.After(now.Add(bulletinClockSkew)):
			n.Unverified++
		case ids[b.ID] || texts[text{pm.Signer, sha256.Sum256(pm.Body)}]:
			n.Duplicates++
		case !b.Broadcast.ValidUntil.IsZero() && !now.Before(b.Broadcast.ValidUntil):
			ids[b.ID] = true
			n.Expired++
		default:
			ids[b.ID], texts[text{pm.Signer, sha256.Sum256(pm.Body)}] = true, true
			kept = append(kept, b)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Created.Before(kept[j].Created) })
	// The newest of each mission's in each country, counted from the end.
	type key struct{ mission, country string }
	per := map[key]int{}
	for i := len(kept) - 1; i >= 0; i-- {
		k := key{kept[i].Mission, kept[i].Country}
		if per[k]++; per[k] > MaxBulletinsPerMission {
			n.Capped++
			kept[i] = nil
		}
	}
	for _, b := range kept {
		if b != nil {
			n.Bulletins = append(n.Bulletins, b)
		}
	}
	return n, nil
}

// verifyBulletin returns the broadcast in data if a mission covering its
// country signed it, according to d, with the public message it came in.
func verifyBulletin(d *keys.Directory, data []byte) (*Bulletin, *envelope.Public) {
	pm, err := envelope.ParsePublic(data)
	if err != nil {
		return nil, nil
	}
	for _, m := range d.MissionsFor(pm.Country) {
		if m.Identity.Fingerprint().Equal(pm.Signer) && pm.Verify(m.Identity) == nil {
			msg, err := message.Unmarshal(pm.Body)
			if b, ok := msg.(*message.Broadcast); err == nil && ok && b.Country == pm.Country {
				return &Bulletin{ID: pm.ID, Mission: m.ID, Country: pm.Country, Created: pm.Created, Broadcast: b}, &pm
			}
			return nil, nil
		}
	}
	return nil, nil
}
