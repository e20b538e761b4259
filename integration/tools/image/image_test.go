package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testOptions build the image of the repository this test runs in, with
// fixed stamps (what make image takes from git).
func testOptions(t *testing.T) Options {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Root:      root,
		Version:   "1.2.3-test",
		Revision:  "0123456789abcdef0123456789abcdef01234567",
		Created:   time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Source:    "https://github.com/streambudget/streambudget",
		Platforms: DefaultPlatforms,
	}
}

var built struct {
	sync.Once
	dir    string
	digest v1.Hash
	err    error
}

// buildOnce builds the image into a layout shared by the tests of this binary.
func buildOnce(t *testing.T) (string, v1.Hash) {
	t.Helper()
	built.Do(func() {
		dir, err := os.MkdirTemp("", "streambudget-image-test-")
		if err != nil {
			built.err = err
			return
		}
		idx, err := Build(context.Background(), testOptions(t))
		if err != nil {
			built.err = err
			return
		}
		built.dir = filepath.Join(dir, "layout")
		built.digest, built.err = WriteLayout(built.dir, idx, "1.2.3-test")
	})
	if built.err != nil {
		t.Fatalf("build the image: %v", built.err)
	}
	return built.dir, built.digest
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(filepath.Dir(built.dir))
	}
	os.Exit(code)
}

// TestReproducible builds the image a second time, binaries included, and
// expects the same digest.
func TestReproducible(t *testing.T) {
	_, first := buildOnce(t)
	idx, err := Build(context.Background(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	second, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second build: got digest %s, want %s (the first build's)", second, first)
	}
	// A different commit time is a different image: the digest does depend
	// on the stamps, so the equality above is not vacuous.
	o := testOptions(t)
	o.Created = o.Created.Add(time.Second)
	o.Platforms = DefaultPlatforms[:1]
	other, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := other.Digest(); d == first {
		t.Errorf("a build with another commit time has the same digest %s", d)
	}
}

// TestPushPull pushes the layout to a registry started by the test, pulls it
// back and checks what a cluster would run: both platforms, the config (user,
// entrypoint, labels), no shell in any layer, the CA bundle, and the binary
// taken from the layer answering `version`.
func TestPushPull(t *testing.T) {
	dir, digest := buildOnce(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ref := ln.Addr().String() + "/streambudget/streambudget:1.2.3-test"
	pushed, err := Push(context.Background(), dir, ref, true)
	if err != nil {
		t.Fatal(err)
	}
	if pushed != digest {
		t.Errorf("pushed digest: got %s, want %s", pushed, digest)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if got, _ := idx.Digest(); got != digest {
		t.Errorf("pulled digest: got %s, want %s", got, digest)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, desc := range m.Manifests {
		platforms = append(platforms, desc.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !reflect.DeepEqual(platforms, want) {
		t.Errorf("platforms: got %v, want %v", platforms, want)
	}
	o := testOptions(t)
	for _, desc := range m.Manifests {
		t.Run(desc.Platform.String(), func(t *testing.T) {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Architecture != desc.Platform.Architecture || cf.OS != "linux" {
				t.Errorf("config platform: got %s/%s, want %s", cf.OS, cf.Architecture, desc.Platform)
			}
			if cf.Config.User != "65532:65532" {
				t.Errorf("user: got %q, want 65532:65532 (numeric, non-root)", cf.Config.User)
			}
			if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/streambudget"}) || len(cf.Config.Cmd) != 0 {
				t.Errorf("entrypoint/cmd: got %v %v, want [/streambudget] and no cmd", cf.Config.Entrypoint, cf.Config.Cmd)
			}
			if !reflect.DeepEqual(cf.Config.Labels, o.Labels()) {
				t.Errorf("labels:\ngot  %v\nwant %v", cf.Config.Labels, o.Labels())
			}
			if got := cf.Config.Labels["org.opencontainers.image.created"]; got != "2026-11-30T12:00:00Z" {
				t.Errorf("created label: got %q, want the commit time 2026-11-30T12:00:00Z", got)
			}
			if !cf.Created.Time.Equal(o.Created) {
				t.Errorf("created: got %s, want the commit time %s", cf.Created.Time, o.Created)
			}
			files := layerFiles(t, img)
			for path := range files {
				base := filepath.Base(path)
				if base == "sh" || base == "bash" || base == "busybox" || strings.HasPrefix(path, "bin/") || strings.HasPrefix(path, "usr/") {
					t.Errorf("layer file %s: want no shell and no OS userland", path)
				}
			}
			var executables []string
			for path, f := range files {
				if f.mode&0o111 != 0 && !f.dir {
					executables = append(executables, path)
				}
			}
			if !reflect.DeepEqual(executables, []string{"streambudget"}) {
				t.Errorf("executables: got %v, want only streambudget", executables)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(files[CertFile].data) || len(files[CertFile].data) < 100_000 {
				t.Errorf("%s: got %d bytes, want a PEM bundle of CA certificates", CertFile, len(files[CertFile].data))
			}
			if !strings.Contains(string(files["etc/passwd"].data), "nonroot:x:65532:65532:") {
				t.Errorf("etc/passwd: got %q, want the nonroot user 65532", files["etc/passwd"].data)
			}
			if desc.Platform.Architecture != runtime.GOARCH {
				return
			}
			bin := filepath.Join(t.TempDir(), "streambudget")
			if err := os.WriteFile(bin, files["streambudget"].data, 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "version").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "streambudget 1.2.3-test" {
				t.Errorf("streambudget version from the image: got %q (%v), want \"streambudget 1.2.3-test\"", out, err)
			}
		})
	}
}

type file struct {
	mode int64
	dir  bool
	data []byte
}

// layerFiles flattens the image's layers into path -> file.
func layerFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, tr); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
				t.Errorf("layer entry %s: a link, want only files and directories", h.Name)
			}
			files[strings.TrimSuffix(h.Name, "/")] = file{mode: h.Mode, dir: h.Typeflag == tar.TypeDir, data: buf.Bytes()}
		}
		rc.Close()
	}
	return files
}
