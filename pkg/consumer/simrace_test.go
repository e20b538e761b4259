//go:build race

package consumer

// defaultSimSeeds under the race detector, which makes a schedule about ten
// times slower: enough to find a data race, the thousands run without it.
const defaultSimSeeds = 20
