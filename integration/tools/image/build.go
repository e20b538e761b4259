package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// User is the image's numeric non-root user and group (distroless's nonroot).
const User = "65532:65532"

// Entrypoint is where the binary lives in the image.
const Entrypoint = "/streambudget"

// CertFile is where the CA bundle lives: the path Go's crypto/x509 reads first on Linux.
const CertFile = "etc/ssl/certs/ca-certificates.crt"

// Options say what to build. Everything that ends up in the image comes
// from them and the sources, never from the clock or the machine, so the
// same options on the same commit give the same digest.
type Options struct {
	Root      string    // the streambudget repository (holds go.mod)
	Version   string    // main.version and org.opencontainers.image.version
	Revision  string    // the commit, org.opencontainers.image.revision
	Created   time.Time // the commit time: every timestamp in the image
	Source    string    // org.opencontainers.image.source
	Platforms []v1.Platform
	Go        string // the go command
	WorkDir   string // where binaries are built; a temporary directory when empty
	LogOutput io.Writer
}

// DefaultPlatforms are the platforms `make image` builds.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
}

// Labels are the image's OCI labels.
func (o Options) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "streambudget",
		"org.opencontainers.image.description": "Per-team log budgets from Kinesis to Elasticsearch",
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.url":         o.Source,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

// Build builds the multi-platform image index.
func Build(ctx context.Context, o Options) (v1.ImageIndex, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	if o.LogOutput == nil {
		o.LogOutput = io.Discard
	}
	work := o.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "streambudget-image-")
		if err != nil {
			return nil, fmt.Errorf("make a build directory: %w", err)
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	base, err := baseLayer(o.Created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		bin, err := buildBinary(ctx, o, p, work)
		if err != nil {
			return nil, err
		}
		binLayer, err := layerOf(o.Created, []entry{{name: strings.TrimPrefix(Entrypoint, "/"), mode: 0o755, data: bin}})
		if err != nil {
			return nil, err
		}
		img, err := image(o, p, base, binLayer)
		if err != nil {
			return nil, err
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	return idx, nil
}

func image(o Options, p v1.Platform, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	history := []string{"CA certificates (golang.org/x/crypto/x509roots/fallback), passwd and group for the nonroot user, /tmp", "the streambudget binary"}
	for i, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     l,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: history[i], Comment: "streambudget image builder (integration/tools/image)"},
		})
		if err != nil {
			return nil, fmt.Errorf("add layer %d for %s: %w", i, p, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Author = ""
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   []string{Entrypoint},
		WorkingDir:   "/",
		Env:          []string{"SSL_CERT_FILE=/" + CertFile},
		ExposedPorts: map[string]struct{}{"9090/tcp": {}},
		Labels:       o.Labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set the config for %s: %w", p, err)
	}
	return img, nil
}

// buildBinary builds the static binary for p from the repository, with
// everything that would vary between machines or runs pinned.
func buildBinary(ctx context.Context, o Options, p v1.Platform, work string) ([]byte, error) {
	out := filepath.Join(work, "streambudget-"+p.OS+"-"+p.Architecture)
	cmd := exec.CommandContext(ctx, o.Go, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X main.version="+o.Version,
		"-o", out, "./cmd/streambudget")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture,
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=-mod=readonly", "GOEXPERIMENT=")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = o.LogOutput, &stderr
	fmt.Fprintf(o.LogOutput, "image: go build streambudget for %s\n", p)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for %s: %w\n%s", p, err, stderr.String())
	}
	return os.ReadFile(out)
}

// entry is one file or directory of a layer.
type entry struct {
	name string
	mode int64
	dir  bool
	data []byte
}

// baseLayer holds what the binary needs from an OS: the CA bundle, and
// passwd and group naming the nonroot user, and a writable /tmp.
func baseLayer(created time.Time) (v1.Layer, error) {
	var pemBundle bytes.Buffer
	n := 0
	for root := range bundle.Roots() {
		// A root with a constraint (a distrust-after date) cannot be said in
		// a PEM bundle; leaving it out trusts less, never more.
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&pemBundle, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, fmt.Errorf("encode a CA certificate: %w", err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the fallback bundle holds no unconstrained CA certificate")
	}
	return layerOf(created, []entry{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/ssl", mode: 0o755, dir: true},
		{name: "etc/ssl/certs", mode: 0o755, dir: true},
		{name: CertFile, mode: 0o644, data: pemBundle.Bytes()},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/nonroot", mode: 0o700, dir: true, data: nil},
		{name: "tmp", mode: 0o1777, dir: true},
	})
}

// layerOf writes the entries, in the order given, as a gzipped tar with
// fixed owners and times, so the same entries always give the same bytes.
func layerOf(created time.Time, entries []entry) (v1.Layer, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: created.UTC().Truncate(time.Second), Format: tar.FormatUSTAR}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if e.name == "home/nonroot" {
			h.Uid, h.Gid = 65532, 65532
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// WriteLayout writes the index as an OCI image layout in dir, replacing
// what was there, with the version as its ref name.
func WriteLayout(dir string, idx v1.ImageIndex, version string) (v1.Hash, error) {
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("clear %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("write an OCI layout in %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version})); err != nil {
		return v1.Hash{}, fmt.Errorf("write the image into %s: %w", dir, err)
	}
	return idx.Digest()
}

// ReadLayout returns the one image index of the OCI layout in dir.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read the OCI layout %s (run make image first): %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s: %d entries in index.json, want 1", dir, len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}
