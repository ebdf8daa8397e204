package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/egressconf/egressconf/pkg/backend"
)

// ReadRun reads a run's results.json, given as the file or as the run's directory. It returns
// the run and the file read.
func ReadRun(path string) (*Run, string, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ResultsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, err
	}
	run := &Run{}
	if err := json.Unmarshal(data, run); err != nil {
		return nil, path, fmt.Errorf("%s: %w", path, err)
	}
	return run, path, nil
}

// CheckOffline says whether src, read from file, can join a run of the catalog named catalogName
// that selects ids as its offline predictions: it must be an offline (--backend sim) run of the
// same catalog with a result for every one of ids. Errors name the file and what differs.
func CheckOffline(src *Run, file, catalogName string, ids []string) error {
	if src.Backend.Oracle != backend.OracleOffline {
		return fmt.Errorf("--offline-from %s: run %q is backend %s (%s), not an offline run: only a --backend sim run joins as %s",
			file, src.ID, src.Backend.Name, src.Backend.Oracle, backend.OracleOffline)
	}
	if src.Selection == nil {
		return fmt.Errorf("--offline-from %s: run %q records no selection (catalog), so it cannot be matched to this run's catalog", file, src.ID)
	}
	if src.Selection.Catalog != catalogName {
		return fmt.Errorf("--offline-from %s: run %q is of catalog %q, this run of catalog %q", file, src.ID, src.Selection.Catalog, catalogName)
	}
	have := map[string]bool{}
	for _, r := range src.Results {
		have[r.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--offline-from %s: run %q has no result for %d of the IDs this run selects: %s (run --backend sim on the whole catalog, or on the same --group/--id)",
			file, src.ID, len(missing), strings.Join(missing, ", "))
	}
	return nil
}

// JoinOffline adds src's answers (an offline run, checked with CheckOffline) to run's results as
// predictions of backend.OracleOffline, and records where they came from. An ID whose expected
// outcome differs between the two runs means their catalogs differ: nothing is joined then.
func JoinOffline(run, src *Run, file string) error {
	if run.Backend.Oracle == backend.OracleOffline {
		return fmt.Errorf("--offline-from %s: run %q is itself an offline run", file, run.ID)
	}
	byID := map[string]*Result{}
	for i := range src.Results {
		if _, dup := byID[src.Results[i].ID]; !dup {
			byID[src.Results[i].ID] = &src.Results[i]
		}
	}
	var ids, differ []string
	for _, r := range run.Results {
		ids = append(ids, r.ID)
		if s := byID[r.ID]; s != nil && s.Expected != r.Expected {
			differ = append(differ, fmt.Sprintf("%s (%q there, %q here)", r.ID, s.Expected, r.Expected))
		}
	}
	catalogName := ""
	if run.Selection != nil {
		catalogName = run.Selection.Catalog
	}
	if err := CheckOffline(src, file, catalogName, ids); err != nil {
		return err
	}
	if len(differ) > 0 {
		return fmt.Errorf("--offline-from %s: run %q expects other outcomes, so its catalog differs: %s", file, src.ID, strings.Join(differ, "; "))
	}
	for i := range run.Results {
		r := &run.Results[i]
		s := byID[r.ID]
		var kept []Prediction
		for _, p := range r.Predictions {
			if p.Oracle != backend.OracleOffline {
				kept = append(kept, p)
			}
		}
		r.Predictions = append(kept, Prediction{Oracle: backend.OracleOffline, Observed: s.Observed, Verdict: s.Verdict, Message: s.Message, Capability: s.Capability, Run: src.ID})
	}
	var srcs []PredictionSource
	for _, p := range run.Predictions {
		if p.Oracle != backend.OracleOffline {
			srcs = append(srcs, p)
		}
	}
	run.Predictions = append(srcs, PredictionSource{Oracle: backend.OracleOffline, Run: src.ID, File: file, Backend: src.Backend.Name, IstioVersion: src.Backend.IstioVersion})
	return nil
}

// PredictionTally says, per prediction oracle of the run, how many results its predictions agree
// with (same verdict and outcome), how many they do not, and how many were not predicted (a skip,
// an error, none recorded): one line each, for the terminal.
func PredictionTally(run *Run) []string {
	var out []string
	for _, src := range predictionSources(run) {
		agree, differ, skipped, errored, none := 0, 0, 0, 0, 0
		for i := range run.Results {
			r := &run.Results[i]
			switch p := r.PredictionBy(src.Oracle); {
			case p == nil:
				none++
			case p.Verdict == r.Verdict && p.Observed == r.Observed:
				agree++
			case p.Verdict == Skip:
				skipped++
			case p.Verdict == Error:
				errored++
			default:
				differ++
			}
		}
		from := ""
		if src.Run != "" {
			from = " (joined from " + src.Run + ")"
		}
		line := fmt.Sprintf("%s%s: %d agree with the %s, %d differ", src.Oracle, from, agree, run.Backend.Oracle, differ)
		for _, n := range []struct {
			n    int
			what string
		}{{skipped, "skipped"}, {errored, "errors"}, {none, "without a prediction"}} {
			if n.n > 0 {
				line += fmt.Sprintf(", %d %s", n.n, n.what)
			}
		}
		out = append(out, line+" (not part of the verdict; egressconf compare classifies them)")
	}
	return out
}
