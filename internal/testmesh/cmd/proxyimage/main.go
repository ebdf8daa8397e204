// Command proxyimage builds the test mesh's proxyv2 image archive (pilot-agent + upstream Envoy;
// package internal/testmesh/proxyimage) and prints its path; -verify then runs its programs in a
// chroot to prove they work here.
//
//	go run ./internal/testmesh/cmd/proxyimage -out DIR [-ref docker.io/local/proxyv2:1.31-dev] [-cache DIR] [-verify]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/egressconf/egressconf/internal/testmesh/proxyimage"
)

func main() {
	out := flag.String("out", "", "directory for the image archive (required)")
	ref := flag.String("ref", proxyimage.DefaultRef, "image reference; its tag is pilot-agent's version")
	cache := flag.String("cache", proxyimage.DefaultCacheDir, "cache directory for downloads and builds")
	latest := flag.Bool("debian-latest", false, "use apt's candidate Debian versions instead of the pinned ones")
	verify := flag.Bool("verify", false, "then unpack the rootfs and run envoy, pilot-agent and istio-iptables in it (root)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: proxyimage -out DIR [-ref REF] [-cache DIR] [-debian-latest] [-verify]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := proxyimage.Build(ctx, proxyimage.Options{Ref: *ref, OutDir: *out, CacheDir: *cache,
		LatestDebian: *latest, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxyimage:", err)
		os.Exit(1)
	}
	if *verify {
		dir, err := os.MkdirTemp(*cache, "verify-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxyimage:", err)
			os.Exit(1)
		}
		checks, err := proxyimage.Verify(ctx, res.Archive, filepath.Join(dir, "rootfs"))
		os.RemoveAll(dir)
		for _, c := range checks {
			fmt.Fprintf(os.Stderr, "verify: $ %s\n%s\n", c.Command, c.Output)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxyimage: verify:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "verify: ok")
	}
	fmt.Fprintf(os.Stderr, "done in %.1fs: %s (%s)\n", time.Since(start).Seconds(), res.Ref, map[bool]string{true: "reused", false: "built"}[res.Reused])
	fmt.Println(res.Archive)
}
