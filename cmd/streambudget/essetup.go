package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/setup"
)

func runESSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("es-setup", "[--dry-run] [--distribution elasticsearch|opensearch] [--es-url URL] PATH...", stderr)
	dryRun := fs.Bool("dry-run", false, "print the requests as JSON instead of sending them")
	distribution := fs.String("distribution", "", "elasticsearch or opensearch (default: ask the cluster; elasticsearch with --dry-run)")
	esURL := fs.String("es-url", "", "the cluster, with admin credentials from ELASTICSEARCH_USERNAME/ELASTICSEARCH_PASSWORD or ELASTICSEARCH_API_KEY (default: the budget file's urls)")
	caFile := fs.String("es-ca", "", "PEM file of CAs to trust for the cluster")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageError(fs, stderr, "no budget files or directories given")
	}
	files, err := loadBudgets(paths, stderr)
	if err != nil {
		return err
	}
	if *dryRun {
		dist := *distribution
		if dist == "" {
			dist = setup.Elasticsearch
		}
		var teams []setup.Team
		for _, f := range files {
			t, err := setup.Cluster(f, dist)
			if err != nil {
				return err
			}
			teams = append(teams, t)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(teams)
	}
	for _, f := range files {
		urls := f.Elasticsearch.URLs
		if *esURL != "" {
			urls = strings.Split(*esURL, ",")
			for i, u := range urls {
				u = strings.TrimSpace(u)
				urls[i] = u
				if err := budget.CheckURL(u); err != nil {
					return usageError(fs, stderr, "--es-url %v", err)
				}
			}
		}
		sink, err := essink.New(essink.Options{URLs: urls, Team: f.Team, Stream: f.StreamName(), CAFile: *caFile,
			Username: os.Getenv("ELASTICSEARCH_USERNAME"), Password: os.Getenv("ELASTICSEARCH_PASSWORD"), APIKey: os.Getenv("ELASTICSEARCH_API_KEY")})
		if err != nil {
			return err
		}
		dist := *distribution
		if dist == "" {
			cl, err := sink.Cluster(ctx)
			if err != nil {
				return fmt.Errorf("team %s: %w", f.Team, err)
			}
			dist = cl.Distribution
			fmt.Fprintf(stdout, "team %s: %s at %s\n", f.Team, cl, strings.Join(urls, ","))
		}
		t, err := setup.Cluster(f, dist)
		if err != nil {
			return err
		}
		if err := setup.Apply(ctx, sink, t, func(r setup.Request, status int) {
			fmt.Fprintf(stdout, "  %s %s: %d (%s)\n", r.Method, r.Path, status, r.Why)
		}); err != nil {
			return err
		}
	}
	return nil
}
