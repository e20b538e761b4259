//go:build tools

// Package tools pins the VictoriaLogs server that the integration tests use as
// the Elasticsearch bulk API stand-in. Build with:
//
//	go build -o BIN github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs
package tools

import _ "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs"
