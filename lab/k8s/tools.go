//go:build tools

// Package k8s pins the real Kubernetes components the lab runs (test infrastructure only: the
// product is C++). `go build` of k8s.io/kubernetes/cmd/kube-apiserver from this module builds
// the API server of the release required in go.mod; the k8s.io staging modules are replaced by
// their matching v0.x releases, as a module that requires k8s.io/kubernetes must do.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
