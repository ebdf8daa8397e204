// Command egressconf runs the egress conformance catalog: list, render, validate and run.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

const rootLong = `egressconf: end-to-end conformance of service-mesh egress control.

It applies the documented egress scenarios step by step and asserts the outcome of every step:
offline on Istio's control plane in process (run --backend sim), or through the Envoy of a live
mesh (run --backend kind|existing).`

// exitCodes is the exit-code contract, shown at the end of the help of egressconf and of its
// commands (those annotated with annotationExitCodes).
const exitCodes = `Exit codes:
  0    nothing failed: PASSED, PARTIAL (a subset, or non-capability skips) or INCONCLUSIVE (nothing passed);
       only PASSED is full conformance (the reports say which)
  1    run: FAILED (an expectation failed, erred or did not run; a teardown failed); compare: the runs
       differ; mutate: an expectation is not discriminating; validate: the catalog is invalid; any error
  2    bad usage: an unknown command or flag, a flag value refused
  130  INTERRUPTED (Ctrl-C or SIGTERM): the reports say interrupted and list what did not run
`

// annotationExitCodes marks the commands whose help ends with the exit codes (not cobra's own
// help and completion commands, whose exit codes are only 0 and 2).
const annotationExitCodes = "egressconf.io/exit-codes"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run executes the command line and returns the exit code, printing errors to stderr.
func run(args []string, stderr io.Writer) int {
	root := newRootCmd()
	if len(args) == 0 {
		// No command is bad usage (exit 2), as before cobra; the help says what there is.
		root.SetOut(stderr)
		root.Help()
		return 2
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	err = asUsageError(err)
	var ue usageError
	if errors.As(err, &ue) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "egressconf: %s\nRun '%s --help' for usage.\n", ue.msg, cmd.CommandPath())
		return 2
	}
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	fmt.Fprintf(stderr, "egressconf: %v\n", err)
	return 1
}

// execute runs the command line and returns the command's error: for the tests, which call the
// commands in process.
func execute(args ...string) error {
	root := newRootCmd()
	root.SetArgs(args)
	_, err := root.ExecuteC()
	return asUsageError(err)
}

// asUsageError turns cobra's unknown-command error, which has no type of its own, into a usage
// error (exit 2). TestUnknownCommandAndFlagExit2 notices if cobra rewords it.
func asUsageError(err error) error {
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		return usageError{err.Error()}
	}
	return err
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "egressconf",
		Short: "end-to-end conformance of service-mesh egress control",
		Long:  rootLong,
		// Errors are printed once, by run, with the exit code they map to; a usage error names the
		// command's --help rather than printing all of it.
		SilenceErrors: true,
		SilenceUsage:  true,
		Annotations:   map[string]string{annotationExitCodes: "true"},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.SetUsageTemplate(root.UsageTemplate() + `{{if index .Annotations "` + annotationExitCodes + `"}}
` + exitCodes + `{{end}}`)
	for _, c := range []*cobra.Command{newListCmd(), newRenderCmd(), newValidateCmd(), newRunCmd(),
		newMutateCmd(), newCompareCmd(), newTimingCmd(), newVersionCmd()} {
		c.Annotations = map[string]string{annotationExitCodes: "true"}
		root.AddCommand(c)
	}
	return root
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// exitError ends the command with a code after it printed its own output.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// stringList is a repeatable flag; each value may also be a comma-separated list.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*s = append(*s, x)
		}
	}
	return nil
}

// Type is the value's name in --help.
func (s *stringList) Type() string { return "strings" }
