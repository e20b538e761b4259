// Command benchreport runs the benchmarks behind `make bench` and prints
// their figures as one table, also written to $STACK_DIR/bench/results.json.
//
//	go run ./integration/bench/cmd/benchreport [-bench regexp] [-benchtime 1s] [-strict] [packages]
//
// It runs `go test -run=NONE -bench=... -benchmem -count=1` on ./pkg/consumer,
// ./pkg/decode, ./pkg/rules and the packages given, derives the figures the
// targets are stated in, and merges the figures other benchmark programs
// left in $STACK_DIR/bench/*.figures.json (JSON arrays of
// {"figure","value","unit","target","pass"}). The budget accuracy
// simulation runs in virtual time and is deterministic, so it runs once per
// case (-benchtime=1x) whatever -benchtime says.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/streambudget/streambudget/integration/bench/report"
)

var defaultPackages = []string{"./pkg/consumer", "./pkg/document", "./pkg/kinesis", "./pkg/decode", "./pkg/rules"}

func main() {
	var o options
	flag.StringVar(&o.bench, "bench", ".", "benchmarks to run, as go test -bench")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "time (or Nx) per benchmark, as go test -benchtime")
	flag.StringVar(&o.goCmd, "go", "go", "the go command")
	flag.BoolVar(&o.accuracy, "accuracy", true, "run the budget accuracy simulation (once per case, in virtual time)")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a figure misses its target")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchreport [flags] [packages]\n\nRuns the benchmarks of %s and the packages given, prints the figures and writes $STACK_DIR/bench/results.json.\n\n", strings.Join(defaultPackages, " "))
		flag.PrintDefaults()
	}
	flag.Parse()
	o.packages = append(append([]string(nil), defaultPackages...), flag.Args()...)
	missed, err := run(o, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	if missed > 0 && o.strict {
		fmt.Fprintf(os.Stderr, "benchreport: %d figures miss their target\n", missed)
		os.Exit(1)
	}
}

type options struct {
	bench, benchtime, goCmd string
	accuracy, strict        bool
	packages                []string
}

// run returns how many figures miss their target.
func run(o options, stdout, stderr io.Writer) (int, error) {
	root, err := moduleRoot()
	if err != nil {
		return 0, err
	}
	stackDir := os.Getenv("STACK_DIR")
	if stackDir == "" {
		stackDir = filepath.Join(root, ".stack")
	}
	benchDir := filepath.Join(stackDir, "bench")

	var raw bytes.Buffer
	speed := []string{"test", "-run=NONE", "-bench=" + o.bench, "-benchmem", "-count=1", "-benchtime=" + o.benchtime}
	if o.accuracy {
		speed = append(speed, "-skip=BudgetAccuracy|BatchMemory")
	}
	if err := goTest(o.goCmd, root, append(speed, o.packages...), &raw, stderr); err != nil {
		return 0, err
	}
	if o.accuracy {
		for _, args := range [][]string{
			{"test", "-run=NONE", "-bench=^BenchmarkBudgetAccuracy$", "-count=1", "-benchtime=1x", "./pkg/consumer"},
			{"test", "-run=NONE", "-bench=^BenchmarkBatchMemory$", "-count=1", "-benchtime=1x", "./pkg/document"},
		} {
			if err := goTest(o.goCmd, root, args, &raw, stderr); err != nil {
				return 0, err
			}
		}
	}
	if err := os.MkdirAll(benchDir, 0o755); err != nil {
		return 0, err
	}
	// The raw output, for benchstat.
	if err := os.WriteFile(filepath.Join(benchDir, "raw.txt"), raw.Bytes(), 0o644); err != nil {
		return 0, err
	}
	env, benchmarks, err := report.Parse(&raw)
	if err != nil {
		return 0, fmt.Errorf("parse benchmark output: %w", err)
	}
	if len(benchmarks) == 0 {
		return 0, errors.New("no benchmark ran: check -bench")
	}
	figs := report.Derive(benchmarks)
	extra, err := report.ReadFigureFiles(benchDir)
	if err != nil {
		return 0, err
	}
	figs = append(figs, extra...)

	goVersion := goEnv(o.goCmd, root, "GOVERSION")
	procs := benchmarks[0].Procs
	fmt.Fprintf(stdout, "\nstreambudget benchmarks: %s, %s/%s, %s, GOMAXPROCS %d, benchtime %s\n\n", goVersion, env.GOOS, env.GOARCH, env.CPU, procs, o.benchtime)
	if err := report.WriteTable(stdout, figs); err != nil {
		return 0, err
	}
	fmt.Fprintln(stdout, "\nPer core: each pipeline benchmark runs on one goroutine, so 1e9 / (ns per record) is one core's rate.")
	fmt.Fprintln(stdout, "Ratios are measured in the same run; budget accuracy runs the real pacer in virtual time (5 min per case).")

	res := report.Results{Generated: time.Now().UTC(), GoVersion: goVersion, Env: env, Benchtime: o.benchtime, Figures: figs, Benchmarks: benchmarks}
	out := filepath.Join(benchDir, "results.json")
	if err := res.WriteFile(out); err != nil {
		return 0, fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintf(stdout, "\nwritten to %s\n", out)
	return len(report.Missed(figs)), nil
}

// goTest runs the go command in dir; its output goes to stderr as it comes
// (benchmarks take a while) and to out for parsing.
func goTest(goCmd, dir string, args []string, out *bytes.Buffer, stderr io.Writer) error {
	fmt.Fprintf(stderr, "%s %s\n", goCmd, strings.Join(args, " "))
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	cmd.Stdout = io.MultiWriter(out, stderr)
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", goCmd, strings.Join(args, " "), err)
	}
	return nil
}

func goEnv(goCmd, dir, key string) string {
	cmd := exec.Command(goCmd, "env", key)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "go (version unknown)"
	}
	return strings.TrimSpace(string(out))
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it")
		}
		dir = parent
	}
}
