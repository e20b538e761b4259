package harness

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var helmOnce struct {
	sync.Once
	path string
	err  error
}

// Helm returns the pinned helm binary, building it on first use with
// integration/helm/helm.sh (from the Go module proxy, cached in $STACK_DIR/bin).
// A helm that cannot be built fails t, never skips it.
func Helm(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			helmOnce.err = err
			return
		}
		cmd := exec.Command("bash", filepath.Join("integration", "helm", "helm.sh"))
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			helmOnce.err = errors.New("integration/helm/helm.sh: " + err.Error() + "\n" + stderr.String())
			return
		}
		helmOnce.path = strings.TrimSpace(string(out))
	})
	if helmOnce.err != nil {
		t.Fatalf("build helm: %v", helmOnce.err)
	}
	return helmOnce.path
}

// RunHelm runs the pinned helm in the repository root with private cache,
// config and data directories, and returns its stdout, or an error holding
// its stderr when it fails.
func RunHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Helm(t), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(err.Error() + ": " + stderr.String() + stdout.String())
	}
	return stdout.String(), nil
}
