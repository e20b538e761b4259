//go:build !race

package consumer

// defaultSimSeeds is what `go test` simulates; make test runs thousands.
const defaultSimSeeds = 60
