//go:build tools

// Package tools pins the helm CLI used by the chart tests. Build with:
//
//	go build -o BIN helm.sh/helm/v3/cmd/helm
package tools

import _ "helm.sh/helm/v3/cmd/helm"
