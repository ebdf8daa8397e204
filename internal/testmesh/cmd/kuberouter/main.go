// Command kuberouter builds the test cluster's NetworkPolicy enforcer image (kube-router's firewall;
// package internal/testmesh/kuberouter) and prints the archive's path; -manifest also writes its
// Kubernetes manifest (ServiceAccount, RBAC, DaemonSet in kube-system) for that image.
//
//	go run ./internal/testmesh/cmd/kuberouter -out DIR [-manifest FILE] [-ref REF] [-cache DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/egressconf/egressconf/internal/testmesh/kuberouter"
)

func main() {
	out := flag.String("out", "", "directory for the image archive (required)")
	ref := flag.String("ref", kuberouter.DefaultRef, "image reference")
	cache := flag.String("cache", kuberouter.DefaultCacheDir, "cache directory for downloads and builds")
	manifest := flag.String("manifest", "", "also write the enforcer's manifest to this file")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: kuberouter -out DIR [-manifest FILE] [-ref REF] [-cache DIR]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := kuberouter.Build(ctx, kuberouter.Options{Ref: *ref, OutDir: *out, CacheDir: *cache, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuberouter:", err)
		os.Exit(1)
	}
	if *manifest != "" {
		if err := os.WriteFile(*manifest, []byte(kuberouter.Manifest(res.Ref)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "kuberouter:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "manifest: %s\n", *manifest)
	}
	fmt.Fprintf(os.Stderr, "done in %.1fs: %s (%s)\n", time.Since(start).Seconds(), res.Ref, map[bool]string{true: "reused", false: "built"}[res.Reused])
	fmt.Println(res.Archive)
}
