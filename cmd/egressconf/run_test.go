package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/report"
)

// TestMain lets a test run the command itself in a child process (the test binary is a built
// egressconf): Ginkgo runs one suite per process, and a signal needs a process of its own.
func TestMain(m *testing.M) {
	if args := os.Getenv("EGRESSCONF_TEST_MAIN"); args != "" {
		os.Args = append([]string{"egressconf"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EGRESSCONF_TEST_MAIN="+strings.Join(args, "\x1f"))
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func readRun(t *testing.T, dir string) *report.Run {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	run := &report.Run{}
	if err := json.Unmarshal(data, run); err != nil {
		t.Fatal(err)
	}
	return run
}

// TestSIGINTInterruptsSimRun: a real SIGINT to a sim run exits 130, every report says
// interrupted, and every selected ID has exactly one result, those that did not run as errors.
func TestSIGINTInterruptsSimRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the offline backend in a child process")
	}
	reports := t.TempDir()
	cmd := command("run", "--backend", "sim", "--reports", reports, "--run-id", "sigint")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	sent := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		// Interrupt once the second expectation has a result.
		if !sent && strings.Contains(out.String(), "DENYNS-02") && (strings.HasPrefix(strings.TrimSpace(line), "ok") || strings.Contains(line, "DENYNS-02")) {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
	}
	err = cmd.Wait()
	if !sent {
		t.Fatalf("never interrupted; output:\n%s", out.String())
	}
	if code := exitCode(err); code != 130 {
		t.Fatalf("exit %d, want 130; output:\n%s", code, out.String())
	}
	dir := filepath.Join(reports, "sigint")
	for _, f := range []string{report.SummaryFile, report.ConformanceFile, report.JUnitFile, report.ResultsFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(string(data)), "interrupted") {
			t.Errorf("%s does not say interrupted", f)
		}
		if strings.Contains(string(data), "**PASSED**") || strings.Contains(string(data), "result: success") {
			t.Errorf("%s reads as a pass", f)
		}
	}
	run := readRun(t, dir)
	if !run.Interrupted || run.Verdict == nil || run.Verdict.ExitCode != 130 {
		t.Errorf("results.json: interrupted %v verdict %+v", run.Interrupted, run.Verdict)
	}
	count := map[string]int{}
	notRun := 0
	for _, r := range run.Results {
		count[r.ID]++
		if r.NotRun {
			notRun++
			if r.Verdict != report.Error {
				t.Errorf("%s not run but %s", r.ID, r.Verdict)
			}
		}
	}
	if len(count) != 62 || len(run.Results) != 62 {
		t.Errorf("%d IDs, %d results; want each of the 62 exactly once", len(count), len(run.Results))
	}
	if notRun == 0 {
		t.Error("no ID reported as not run")
	}
}

// TestDuplicateSelectionRunsOnce: a group named by ID and by name, and a repeated --id, run each
// ID once; the subset is named and reads partial, never as full conformance.
func TestDuplicateSelectionRunsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the offline backend in a child process")
	}
	reports := t.TempDir()
	out, err := command("run", "--backend", "sim", "--reports", reports, "--run-id", "dup",
		"--group", "G1", "--group", "deny-namespace", "--id", "DENYNS-01", "--id", "DENYNS-01", "--id", "DENYNS-03").CombinedOutput()
	if code := exitCode(err); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	run := readRun(t, filepath.Join(reports, "dup"))
	var ids []string
	for _, r := range run.Results {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "DENYNS-01,DENYNS-03" {
		t.Errorf("results %v, want DENYNS-01,DENYNS-03 once each", ids)
	}
	if run.Verdict == nil || run.Verdict.Result != report.ResultPartial || run.Selection == nil || run.Selection.Full ||
		run.Selection.CatalogIDs != 62 || len(run.Selection.SelectedIDs) != 2 || strings.Join(run.Selection.Groups, ",") != "G1,deny-namespace" {
		t.Errorf("verdict %+v selection %+v", run.Verdict, run.Selection)
	}
	if run.Settings["positive-successes"] != "3" || run.Settings["negative-hold"] != "5s" {
		t.Errorf("settings %v", run.Settings)
	}
	summary, _ := os.ReadFile(filepath.Join(reports, "dup", report.SummaryFile))
	if !strings.Contains(string(summary), "**PARTIAL**") || !strings.Contains(string(summary), "2 of 62 IDs") {
		t.Errorf("summary:\n%s", summary)
	}
}

// TestRunRefusesBadSettings: nonsensical consistency settings, timeouts, run IDs and live-only
// flags on the offline backend are refused before anything runs, naming the flag.
func TestRunRefusesBadSettings(t *testing.T) {
	reports := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--positive-successes", "0"}, "--positive-successes 0"},
		{[]string{"--negative-hold", "-1s"}, "--negative-hold -1s"},
		{[]string{"--probe-interval", "-1s"}, "--probe-interval -1s"},
		{[]string{"--timeout-eventually", "-5s"}, "--timeout-eventually -5s"},
		{[]string{"--timeout-teardown", "0s"}, "--timeout-teardown 0s"},
		{[]string{"--probe-connect-timeout", "20s", "--probe-max-time", "10s"}, "--probe-connect-timeout"},
		{[]string{"--run-id", "../../x"}, `--run-id "../../x"`},
		{[]string{"--run-id", "a/b"}, "path separator"},
		{[]string{"--kubeconfig", "/tmp/k"}, "--kubeconfig only applies to a live backend"},
		{[]string{"--probe", "xds"}, "--probe only applies"},
		{[]string{"--istio-profile", "bogus"}, `unknown Istio profile "bogus"`},
	}
	for _, tc := range cases {
		args := append([]string{"--backend", "sim", "--reports", reports}, tc.args...)
		_, err := capture(t, func() error { return cmdRun(args) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(reports); len(entries) > 0 {
		t.Errorf("a refused run wrote %v", entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(reports)), "x")); err == nil {
		t.Error("--run-id ../../x wrote outside --reports")
	}
}

var _ = time.Second
