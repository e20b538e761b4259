package harness

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is a server a test started: its output goes to a log file, which
// the test log gets when the test fails, and it is stopped when the test
// ends.
type process struct {
	name    string
	t       testing.TB
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProcess starts cmd with its output in logPath, registers stop to run
// when the test ends, and waits up to 30 s until ready reports true. The
// test fails if the process exits first or is not ready in time.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, logPath string, ready func() bool, stop func(*process)) *process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, t: t, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		stop(p)
		if t.Failed() {
			p.DumpLog()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if p.Exited() {
			p.DumpLog()
			t.Fatalf("%s exited during start-up: %v", name, p.err)
		}
		if ready() {
			return p
		}
	}
	p.DumpLog()
	t.Fatalf("%s was not ready within 30s", name)
	return nil
}

// PID is the process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// Kill stops the process with SIGKILL, if it runs.
func (p *process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// Stop sends SIGTERM and returns how long the process took to exit and its
// exit error; after timeout it kills the process.
func (p *process) Stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(timeout):
		p.Kill()
		return time.Since(start), fmt.Errorf("did not exit within %s after SIGTERM", timeout)
	}
}

// Exited reports whether the process has exited.
func (p *process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// DumpLog prints the end of the process log into the test log.
func (p *process) DumpLog() {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	p.t.Logf("%s log (%s):\n%s", p.name, p.logPath, b)
}

// Log returns the process log so far.
func (p *process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}
