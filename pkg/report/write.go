package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File names under reports/<run>/.
const (
	JUnitFile       = "junit.xml"
	SummaryFile     = "summary.md"
	ConformanceFile = "conformance-report.yaml"
	ResultsFile     = "results.json"
)

// WriteAll writes every report of the run into dir and returns the paths written.
func WriteAll(dir string, run *Run) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := Decide(run)
	run.Verdict = &d
	writers := []struct {
		name  string
		write func(io.Writer, *Run) error
	}{
		{JUnitFile, WriteJUnit},
		{SummaryFile, WriteSummary},
		{HTMLFile, writeRunHTML},
		{ConformanceFile, WriteConformance},
		{ResultsFile, writeJSON},
	}
	var paths []string
	for _, wr := range writers {
		p := filepath.Join(dir, wr.name)
		f, err := os.Create(p)
		if err != nil {
			return paths, err
		}
		err = wr.write(f, run)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return paths, fmt.Errorf("writing %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func writeJSON(w io.Writer, run *Run) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(run)
}
