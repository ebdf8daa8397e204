package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPBinMode: --httpbin-addr serves the httpbin API for any Host on plain HTTP (the in-mesh
// httpbin fixture), logs each request, and shuts down with ctx.
func TestHTTPBinMode(t *testing.T) {
	addr := freeAddr(t)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"--httpbin-addr", addr}, stdout, stderr) }()
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/headers", nil)
		req.Host = "httpbin.demo:8000"
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
	}
	if err != nil {
		cancel()
		t.Fatalf("no answer on %s: %v; stderr: %s", addr, err, stderr.String())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
	}
	var h struct{ Headers map[string]string }
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("not httpbin's /headers JSON: %v: %s", err, body)
	}
	if got := h.Headers["Host"]; got != "httpbin.demo:8000" {
		t.Errorf("reported Host %q, want the request's httpbin.demo:8000", got)
	}
	if !strings.Contains(stdout.String(), "httpbin httpbin.demo:8000 GET /headers") {
		t.Errorf("no request log line: %q", stdout.String())
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not shut down")
	}
}
