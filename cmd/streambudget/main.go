// Command streambudget reads a team's Kinesis log stream within the team's
// budget and indexes it into Elasticsearch. One binary, one file per
// subcommand (the commands table below lists them; `streambudget help`
// prints it). main parses flags, sets up logging and signals, then calls
// into pkg/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/streambudget/streambudget/pkg/budget"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "dev"

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"es-setup":          {"print or apply the index templates, lifecycle policy and role a team needs in Elasticsearch or OpenSearch", runESSetup},
	"iam-policy":        {"print the AWS IAM policy a team's pods need for Kinesis and DynamoDB", runIAMPolicy},
	"demo":              {"three teams on the local stack, one spiking: watch the budgets hold", runDemo},
	"run":               {"read a team's stream within its budget and index it (one pod)", runRun},
	"lint":              {"validate budget files; --sample runs a team's rules over log lines", runLint},
	"loadgen":           {"write JSON log records to a stream at a rate, steady or spiking", runLoadgen},
	"monitoring-values": {"print the fleet monitoring chart's values (the teams that should exist) from budgets/", runMonitoringValues},
	"plan":              {"print each team's budget, shards and pods as a table with warnings", runPlan},
	"top":               {"a live table of teams over pods' /metrics: budget, read rate, lag, headroom, advice", runTop},
}

// errUsage marks errors that already printed their usage.
var errUsage = errors.New("usage")

// exitError carries a specific exit status without printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "streambudget", version)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "streambudget: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	var code exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, flag.ErrHelp):
		return 0 // -h and --help asked for the usage, which is printed
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "streambudget %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: streambudget COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-17s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'streambudget COMMAND -h' for a command's flags.")
}

// newFlagSet returns a flag set that prints its usage to stderr.
func newFlagSet(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: streambudget %s %s\n\nflags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags wherever they stand among the arguments, so that
// `lint budgets/ --strict` means what it says (Go's flag package stops at
// the first argument). After "--" everything is an argument. It returns the
// arguments, or flag.ErrHelp for -h/--help, or errUsage after printing what
// is wrong and the usage.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for len(args) > 0 {
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, errUsage // the flag package printed the error and the usage
		}
		// Parse stops at the first argument, or after a "--" it consumed.
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(rest, fs.Args()...), nil
		}
		args = fs.Args()
		if len(args) > 0 {
			rest = append(rest, args[0])
			args = args[1:]
		}
	}
	return rest, nil
}

// usageError prints what is wrong and the flag set's usage, and returns
// errUsage (exit status 2).
// loadBudgets loads the budget files at paths; when any has an error it
// prints every finding to stderr and returns exit status 1.
func loadBudgets(paths []string, stderr io.Writer) ([]*budget.File, error) {
	files, findings := budget.LoadPaths(paths...)
	if findings.Err() != nil {
		for _, f := range findings {
			fmt.Fprintln(stderr, f.Error())
		}
		return nil, exitError(1)
	}
	return files, nil
}

func usageError(fs *flag.FlagSet, stderr io.Writer, format string, a ...any) error {
	fmt.Fprintf(stderr, "streambudget %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return errUsage
}

// newLogger returns JSON logs for production and text for a terminal.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}
