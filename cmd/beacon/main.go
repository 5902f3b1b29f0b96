// Command beacon is Beacon's one binary: the relay, the defender's client,
// key and directory tools, and a demo. Run "beacon --help" for the
// subcommands.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"
)

// cli is the command tree. Each subcommand is a struct with a Run method.
type cli struct {
	Demo demoCmd `cmd:"" help:"Show Beacon working: a defender's alert reaches the missions of its country, end to end, on this machine."`
	Keys keysCmd `cmd:"" help:"Generate and inspect key files."`
	Dir  dirCmd  `cmd:"" help:"Sign and verify the directory of missions."`
	Seal sealCmd `cmd:"" help:"Seal stdin into an envelope on stdout (low level)."`
	Open openCmd `cmd:"" help:"Open an envelope from stdin, body to stdout (low level)."`

	Relay relayCmd `cmd:"" help:"Run a relay: embedded NATS with JetStream that stores only valid sealed envelopes."`

	Init     initCmd     `cmd:"" help:"Set up this device: an identity, the relay, the pinned directory." group:"Defender"`
	Alert    alertCmd    `cmd:"" help:"Send an alert to every mission covering a country." group:"Defender"`
	Update   updateCmd   `cmd:"" help:"Add new facts to an alert." group:"Defender"`
	Cancel   cancelCmd   `cmd:"" help:"Call off an alert: you are safe, or it was a false alarm." group:"Defender"`
	Meet     meetCmd     `cmd:"" help:"Ask the missions of a country for a meeting." group:"Defender"`
	Observe  observeCmd  `cmd:"" help:"Ask the missions of a country to observe a hearing." group:"Defender"`
	Inbox    inboxCmd    `cmd:"" help:"Your cases, with acks and replies." group:"Defender"`
	Outbox   outboxCmd   `cmd:"" help:"What is waiting for the relay." group:"Defender"`
	Missions missionsCmd `cmd:"" help:"Who receives alerts for a country, with safety numbers." group:"Defender"`
	News     newsCmd     `cmd:"" help:"Verified broadcasts from missions." group:"Defender"`
}

// env is what every command gets: its streams and the environment, so tests
// run commands in-process without touching the real ones.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func main() {
	os.Exit(run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

// run parses args, runs the command and returns the exit code: 0 on
// success, 1 on an error, 2 on a usage error.
func run(args []string, e *env) (code int) {
	// kong calls Exit after printing help or a usage error; unwind to here
	// instead of exiting the process, so run stays testable in-process.
	type exit int
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exit)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	var c cli
	parser, err := kong.New(&c,
		kong.Name("beacon"),
		kong.Description("Beacon: end-to-end encrypted alerts from human rights defenders to the diplomatic missions that cover their country."),
		kong.Writers(e.stdout, e.stderr),
		kong.Exit(func(code int) { panic(exit(code)) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.BindTo(e, (*env)(nil)),
	)
	if err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return 2
	}
	if err := checkUTF8(args); err != nil {
		printError(e.stderr, err)
		return 1
	}
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return 2
	}
	if err := ctx.Run(e); err != nil {
		printError(e.stderr, err)
		return 1
	}
	return 0
}

// hintError carries a suggestion for the user beside the error.
type hintError struct {
	err  error
	hint string
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

// withHint attaches a hint to err.
func withHint(err error, format string, args ...any) error {
	return &hintError{err: err, hint: fmt.Sprintf(format, args...)}
}

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "error: %v\n", err)
	var h *hintError
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(w, "hint: %s\n", h.hint)
	}
}
