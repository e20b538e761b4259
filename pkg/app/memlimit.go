package app

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go garbage collector lets the heap grow to twice what is live before
// it collects, whatever the container's memory limit: a pod whose batches
// approach half its limit is killed for memory it does not need. Unless
// GOMEMLIMIT is set, Run gives the runtime a soft limit of memLimitShare of
// the cgroup's limit, so the collector works harder as the pod nears it.
const memLimitShare = 0.9

// cgroup files that hold the memory limit: v2, then v1.
var cgroupMemoryFiles = []string{"memory.max", "memory/memory.limit_in_bytes"}

// cgroupMemoryLimit reads the memory limit of the cgroup mounted at root
// (/sys/fs/cgroup); ok is false when there is none.
func cgroupMemoryLimit(root string) (limit int64, ok bool, err error) {
	for _, name := range cgroupMemoryFiles {
		data, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false, &fs.PathError{Op: "parse", Path: filepath.Join(root, name), Err: err}
		}
		// cgroup v1 writes a huge number (a page-rounded MaxInt64) for none.
		if n <= 0 || n >= 1<<60 {
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// setMemoryLimit applies memLimitShare of the cgroup's limit unless
// GOMEMLIMIT is set, and logs what it did.
func setMemoryLimit(log *slog.Logger, getenv func(string) string, root string) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("Go memory limit from GOMEMLIMIT", "limit", v)
		return
	}
	limit, ok, err := cgroupMemoryLimit(root)
	if err != nil {
		log.Warn("cannot read the container's memory limit; the Go runtime has none", "err", err)
		return
	}
	if !ok {
		return
	}
	soft := int64(float64(limit) * memLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("Go memory limit set from the container's", "container_bytes", limit, "go_limit_bytes", soft)
}
