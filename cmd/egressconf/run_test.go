package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// On the terminal the interrupt is one line saying what stops, a few lines of cleanup, the
// result lines and the reports' directory last: no goroutine stacks (Ginkgo's interrupt report).
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
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	var lines []string
	sent := false
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
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
	checkInterruptOutput(t, lines, stderr.String(), dir)
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

// checkInterruptOutput: one line says what the interrupt stops and which run is cleaned up; at
// most a few lines (the stopped expectation, its teardown, the not-run summary) separate it
// from the result lines; no goroutine stack anywhere; the reports' directory is the last line.
func checkInterruptOutput(t *testing.T, stdout []string, stderr, dir string) {
	t.Helper()
	all := strings.Join(stdout, "\n") + "\n" + stderr
	if strings.Contains(all, "goroutine ") {
		t.Errorf("goroutine stacks in the output:\n%s", all)
	}
	note, results := -1, -1
	for i, l := range stdout {
		if strings.HasPrefix(l, "egressconf: interrupted: stopping ") && strings.Contains(l, "cleaning up run sigint") {
			if note >= 0 {
				t.Errorf("a second interrupt line: %q", l)
			}
			note = i
		}
		if strings.HasPrefix(l, "wall time: ") && results < 0 {
			results = i
		}
	}
	if note < 0 || results < note {
		t.Fatalf("no interrupt line before the results (lines %d, %d):\n%s", note, results, all)
	}
	// Between it and the results: the stopped expectation's steps and result, its scenario's
	// teardown, one line for every expectation not run, a blank line. Nothing else, whenever the
	// signal lands.
	between := stdout[note+1 : results]
	resultLine := regexp.MustCompile(`^   (ok|skip|FAIL|ERROR) `)
	cleanup := regexp.MustCompile(`^(   (step |setup|teardown).*)?$`)
	nResults, nNotRun := 0, 0
	for _, l := range between {
		switch {
		case resultLine.MatchString(l):
			nResults++
		case regexp.MustCompile(`^   NOT RUN [0-9]+ expectations: the run was interrupted before them \(`).MatchString(l):
			nNotRun++
		case !cleanup.MatchString(l):
			t.Errorf("unexpected line after the interrupt: %q", l)
		}
	}
	if nResults > 1 || nNotRun != 1 || len(between) > 12 {
		t.Errorf("%d lines, %d results, %d not-run lines between the interrupt line and the results; want a few, at most 1, exactly 1:\n%s",
			len(between), nResults, nNotRun, strings.Join(between, "\n"))
	}
	if last := stdout[len(stdout)-1]; last != "reports: "+dir {
		t.Errorf("last line %q, want %q", last, "reports: "+dir)
	}
}

// TestRunLastLineIsReports: a passing and a failing run end with the reports' directory.
func TestRunLastLineIsReports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the offline backend in a child process")
	}
	failing := brokenCopy(t, "g01-deny-namespace", "scenario.yaml", func(s string) string {
		return strings.Replace(s, "result: 403", "result: 200", 1)
	})
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"partial", []string{"--id", "DENYNS-01"}, 0},
		{"failed", []string{"--catalog", failing}, 1},
	} {
		reports := t.TempDir()
		cmd := command(append([]string{"run", "--backend", "sim", "--reports", reports, "--run-id", tc.name}, tc.args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if code := exitCode(err); code != tc.code {
			t.Fatalf("%s: exit %d, want %d:\n%s%s", tc.name, code, tc.code, out, stderr.String())
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if want := "reports: " + filepath.Join(reports, tc.name); lines[len(lines)-1] != want {
			t.Errorf("%s: last line %q, want %q", tc.name, lines[len(lines)-1], want)
		}
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
		{[]string{"--cluster-dns", "scoped"}, "--cluster-dns only applies"},
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

// TestOfflineFromRefusals: --offline-from is checked before any cluster is touched: a non-sim run,
// another catalog, missing IDs and --backend sim are refused naming the flag and the file.
func TestOfflineFromRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "results.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	xds := write("xds", `{"id":"ci-xds","backend":{"Name":"kind","Oracle":"predicted-live-control-plane"},"selection":{"catalog":"built-in"},"results":[{"id":"DENYNS-01"}]}`)
	mine := write("mine", `{"id":"mine","backend":{"Name":"sim","Oracle":"predicted-offline-control-plane"},"selection":{"catalog":"mydir"},"results":[{"id":"DENYNS-01"}]}`)
	g1 := write("g1", `{"id":"g1","backend":{"Name":"sim","Oracle":"predicted-offline-control-plane"},"selection":{"catalog":"built-in"},"results":[{"id":"DENYNS-01"}]}`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--backend", "sim", "--offline-from", g1}, "--backend sim: --offline-from"},
		{[]string{"--backend", "existing", "--offline-from", xds}, `run "ci-xds" is backend kind (predicted-live-control-plane), not an offline run`},
		{[]string{"--backend", "existing", "--offline-from", mine}, `run "mine" is of catalog "mydir", this run of catalog "built-in"`},
		{[]string{"--backend", "existing", "--offline-from", g1, "--group", "G1"}, `run "g1" has no result for 5 of the IDs this run selects: DENYNS-02, DENYNS-03`},
		{[]string{"--backend", "existing", "--offline-from", filepath.Join(dir, "none")}, "--offline-from: open " + filepath.Join(dir, "none")},
	} {
		args := c.args
		if args[1] != "sim" {
			args = append(args, "--kubeconfig", "/nonexistent/kubeconfig")
		}
		err := cmdRun(args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "kubeconfig") {
			t.Errorf("%v: the cluster was reached before --offline-from was checked: %v", c.args, err)
		}
	}
}
