// Command beacon is Beacon's one binary: the relay, the defender's client,
// key and directory tools, and a demo. Run "beacon --help" for the
// subcommands.
//
// Exit codes: 0 on success, 1 when a command fails, 2 for a usage error.
// A bare "beacon", with no command, prints the usage to standard error and
// exits 2: it did nothing, and a script that ran it should know.
//
// "beacon --version" prints the build: module version, VCS revision and
// time, local changes, Go version. "beacon completion bash|zsh|fish"
// prints the line that turns on completion in that shell; completions are
// answered by the binary itself (github.com/willabides/kongplete).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/internal/buildinfo"
)

// cli is the command tree. Each subcommand is a struct with a Run method.
type cli struct {
	Demo demoCmd `cmd:"" help:"Show Beacon working: a defender's alert reaches the missions of its country, end to end, on this machine."`
	Keys keysCmd `cmd:"" help:"Generate and inspect key files."`
	Dir  dirCmd  `cmd:"" help:"Sign and verify the directory of missions."`
	Seal sealCmd `cmd:"" help:"Seal stdin into an envelope on stdout (low level)."`
	Open openCmd `cmd:"" help:"Open an envelope from stdin, body to stdout (low level)."`

	Relay relayGroup `cmd:"" help:"Run a relay: embedded NATS with JetStream that stores only valid sealed envelopes (beacon relay purge: inspect and purge one)."`

	Console consoleCmd `cmd:"" help:"Run the mission's web console on this workstation (loopback only)." group:"Mission"`
	Mission missionCmd `cmd:"" help:"The console's cases in the terminal: inbox, show, ack, reply, assign, meet, observe, share, broadcast." group:"Mission"`
	Report  reportCmd  `cmd:"" help:"How posts answer, from relay metadata: per post, country and priority (headquarters, or a mission for itself)." group:"Mission"`

	Bridge bridgeCmd `cmd:"" help:"Run a bridge: carry what defenders and missions share to partner governments' relays, with receipts."`

	Version    kong.VersionFlag `help:"Print the build (version, revision, Go version) and exit."`
	Completion completionCmd    `cmd:"" help:"Print the shell code that turns on completion: eval \"$$(beacon completion bash)\"."`

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
	Answer   answerCmd   `cmd:"" help:"Answer a broadcast (apply, or ask about it): only the mission that sent it reads it." group:"Defender"`
	Watch    watchCmd    `cmd:"" help:"Stay connected: send what is queued as soon as the relay is reachable, show acks and replies as they arrive." group:"Defender"`
	Checkin  checkinCmd  `cmd:"" help:"A dead man's switch: arm a plan, check in, disarm; the relay releases your message if you go silent." group:"Defender"`
	Panic    panicCmd    `cmd:"" help:"Release your armed check-in plan now; --wipe also deletes this device's key and state." group:"Defender"`
	Duress   duressCmd   `cmd:"" help:"Set a duress passphrase: it shows an empty decoy and silently releases your armed plan." group:"Defender"`
}

// env is what every command gets: its streams and the environment, so tests
// run commands in-process without touching the real ones.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// ctx, if set, ends a long-running command (watch, inbox --follow)
	// as Ctrl-C would; nil is context.Background().
	ctx context.Context
	// warned is set once a refused relay directory has been reported.
	warned bool
}

// context is the context a long-running command stops with.
func (e *env) context() context.Context {
	if e.ctx != nil {
		return e.ctx
	}
	return context.Background()
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
		kong.Vars{"version": strings.TrimSuffix(buildinfo.Read().String(), "\n")},
	)
	if err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return 2
	}
	// When a shell asks for completions (COMP_LINE is set), answer and exit.
	kongplete.Complete(parser, kongplete.WithPredictor("file", complete.PredictFiles("*")))
	if len(args) == 0 {
		ctx, err := kong.Trace(parser, nil)
		if err != nil {
			return 2
		}
		parser.Stdout = e.stderr
		ctx.PrintUsage(false)
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
	// A config's problems are reported all at once, one line each.
	var es config.Errors
	if errors.As(err, &es) && len(es) > 1 {
		for _, e := range es {
			fmt.Fprintf(w, "error: %v\n", e)
		}
	} else {
		fmt.Fprintf(w, "error: %v\n", err)
	}
	var h *hintError
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(w, "hint: %s\n", h.hint)
	}
}

// completionCmd prints the shell code that has the shell ask beacon itself
// for completions (kongplete answers when COMP_LINE is set).
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *completionCmd) Run(e *env) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	switch c.Shell {
	case "bash":
		fmt.Fprintf(e.stdout, "complete -C %q beacon\n", bin)
	case "zsh":
		fmt.Fprintf(e.stdout, "autoload -U +X bashcompinit && bashcompinit\ncomplete -C %q beacon\n", bin)
	case "fish":
		fmt.Fprintf(e.stdout, `function __complete_beacon
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %q
end
complete -f -c beacon -a "(__complete_beacon)"
`, bin)
	}
	return nil
}
