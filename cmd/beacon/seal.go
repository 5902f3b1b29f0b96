package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

type sealCmd struct {
	To       []string `required:"" sep:"none" help:"Recipient: a public identity (bcn-id:…), or an identity and an inbox key joined by a comma. Repeat for more recipients." placeholder:"PUBLIC"`
	From     string   `help:"Sender key file. A defender's key authenticates deniably, any other role signs. Without it, the envelope is from a fresh anonymous identity." placeholder:"KEY"`
	Country  string   `required:"" help:"Country code (ISO 3166-1 alpha-2, lower case)." placeholder:"CC"`
	Priority string   `required:"" enum:"urgent,high,routine" help:"urgent, high or routine."`
	ReplyTo  string   `name:"reply-to" help:"Reply mailbox (32 hex digits)." placeholder:"MAILBOX"`
	passphraseFlags
}

func (c *sealCmd) Run(e *env) error {
	var to []envelope.Recipient
	for _, s := range c.To {
		r, err := parseRecipient(s)
		if err != nil {
			return err
		}
		to = append(to, r)
	}
	from, auth := (*keys.Identity)(nil), envelope.Deniable
	if c.From != "" {
		kr, err := c.loadKeyring(e, c.From)
		if err != nil {
			return err
		}
		from = kr.Identity
		if kr.Role != keys.RoleDefender {
			auth = envelope.Signed
		}
	} else {
		var err error
		if from, err = keys.GenerateIdentity(); err != nil {
			return err
		}
	}
	p, err := routing.ParsePriority(c.Priority)
	if err != nil {
		return err
	}
	h := envelope.NewHeader(strings.ToLower(c.Country), p)
	if c.ReplyTo != "" {
		if h.ReplyTo, err = routing.ParseMailbox(c.ReplyTo); err != nil {
			return err
		}
	}
	body, err := io.ReadAll(io.LimitReader(e.stdin, envelope.MaxBodySize+1))
	if err != nil {
		return err
	}
	env, err := envelope.Seal(h, body, from, auth, to...)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(env)
	return err
}

// parseRecipient parses "bcn-id:…" or "bcn-id:…,bcn-inbox:…".
func parseRecipient(s string) (envelope.Recipient, error) {
	idText, inboxText, hasInbox := strings.Cut(s, ",")
	id, err := keys.ParsePublicIdentity(idText)
	if err != nil {
		return envelope.Recipient{}, fmt.Errorf("--to: %w", err)
	}
	if !hasInbox {
		return envelope.To(id), nil
	}
	inbox, err := keys.ParseInboxPublicKey(inboxText)
	if err != nil {
		return envelope.Recipient{}, fmt.Errorf("--to: %w", err)
	}
	return envelope.ToInbox(id, inbox), nil
}

type openCmd struct {
	Key string `required:"" help:"Recipient key file." placeholder:"KEY"`
	passphraseFlags
}

func (c *openCmd) Run(e *env) error {
	kr, err := c.loadKeyring(e, c.Key)
	if err != nil {
		return err
	}
	env, err := io.ReadAll(io.LimitReader(e.stdin, envelope.MaxSize+1))
	if err != nil {
		return err
	}
	o, err := envelope.Open(env, kr.Identity, kr.InboxKeys()...)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "from %s (%s), id %s, %s %s, created %s\n", o.Sender.Fingerprint(), o.Auth,
		o.Header.ID, o.Header.Country, o.Header.Priority, o.Header.Created.Format("2006-01-02T15:04:05.000Z07:00"))
	_, err = e.stdout.Write(o.Body)
	return err
}
