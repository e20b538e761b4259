// Command image builds streambudget's container image without a Docker
// daemon, and pushes it:
//
//	image build --root REPO --out DIR --version V --revision SHA --created UNIX
//	image push  --layout DIR REF
//
// build writes a multi-platform (linux/amd64, linux/arm64) OCI image layout:
// the static binary on an empty base with CA certificates and a numeric
// non-root user, OCI labels, every timestamp the commit's time, so the same
// commit gives the same digest. push copies it to a registry (credentials
// from the Docker config, as docker login writes them). `make image` and
// `make image-push` call it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: image build|push [flags]")
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:])
	case "push":
		return runPush(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q: want build or push", args[0])
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	root := fs.String("root", ".", "the streambudget repository")
	out := fs.String("out", ".stack/image", "the OCI layout to write (replaced)")
	version := fs.String("version", "dev", "the version: main.version and the version label")
	revision := fs.String("revision", "", "the commit (git rev-parse HEAD)")
	created := fs.Int64("created", 0, "the commit time in Unix seconds (git log -1 --format=%ct): every timestamp in the image")
	source := fs.String("source", "https://github.com/streambudget/streambudget", "the source label")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *revision == "" || *created <= 0 {
		return fmt.Errorf("build: --revision and --created are required (the commit and its time make the image reproducible)")
	}
	ps, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	opts := Options{
		Root: *root, Version: *version, Revision: *revision, Created: time.Unix(*created, 0).UTC(),
		Source: *source, Platforms: ps, LogOutput: os.Stderr,
	}
	idx, err := Build(ctx, opts)
	if err != nil {
		return err
	}
	digest, err := WriteLayout(*out, idx, *version)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", *out, digest)
	return nil
}

func runPush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	dir := fs.String("layout", ".stack/image", "the OCI layout make image wrote")
	insecure := fs.Bool("insecure", false, "allow a registry over plain HTTP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("push: want one image reference, such as ghcr.io/streambudget/streambudget:0.1.0")
	}
	digest, err := Push(ctx, *dir, fs.Arg(0), *insecure)
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", fs.Arg(0), digest)
	return nil
}

// Push copies the layout's image index to ref and returns its digest.
func Push(ctx context.Context, dir, ref string, insecure bool) (v1.Hash, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	idx, err := ReadLayout(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	return idx.Digest()
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(s, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || osName != "linux" {
			return nil, fmt.Errorf("platform %q: want linux/ARCH", p)
		}
		platform := v1.Platform{OS: osName, Architecture: arch}
		if arch == "arm64" {
			platform.Variant = "v8"
		}
		out = append(out, platform)
	}
	return out, nil
}
