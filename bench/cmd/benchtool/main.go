// Command benchtool does the parts of crowsnest's peer benchmark that are easier in Go than in
// shell: it writes layer tars from directories, pushes OCI images, records ground truth from
// package managers' own files, and scores every tool's SBOM against it.
//
//	benchtool layer [-lower DIR] -o OUT.tar DIR
//	benchtool push -ref HOST:PORT/REPO:TAG LAYER.tar...
//	benchtool truth-python ROOT | truth-java ROOT | truth-npm NPM-LS.json | truth-go BINARY
//	benchtool report -runs results.tsv -truth DIR [-o results.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool layer|push|truth-python|truth-java|truth-npm|truth-go|report ...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run1(ctx, os.Args[1], os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func run1(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet(cmd, flag.ContinueOnError)
	switch cmd {
	case "layer":
		lower := fl.String("lower", "", "lower directory: write only the difference to it")
		out := fl.String("o", "", "output tar")
		if err := fl.Parse(args); err != nil {
			return err
		}
		if fl.NArg() != 1 || *out == "" {
			return fmt.Errorf("want -o OUT and one directory")
		}
		return writeFileAtomic(*out, func(w io.Writer) error { return writeLayer(w, fl.Arg(0), *lower) })
	case "push":
		ref := fl.String("ref", "", "image reference to push to")
		if err := fl.Parse(args); err != nil {
			return err
		}
		if *ref == "" || fl.NArg() == 0 {
			return fmt.Errorf("want -ref and at least one layer tar")
		}
		start := time.Now()
		d, err := push(ctx, *ref, fl.Args())
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pushed %s@%s in %s\n", *ref, d, time.Since(start).Round(time.Millisecond))
		return nil
	case "truth-python", "truth-java", "truth-npm", "truth-go":
		if len(args) != 1 {
			return fmt.Errorf("want one argument")
		}
		var set []nv
		var err error
		switch cmd {
		case "truth-python":
			set, err = pythonTruth(args[0])
		case "truth-java":
			var unnamed []string
			set, unnamed, err = javaTruth(args[0])
			for _, j := range unnamed {
				fmt.Fprintf(os.Stderr, "truth-java: %s has no pom.properties and no version in its name; not counted\n", j)
			}
		case "truth-npm":
			var b []byte
			if b, err = os.ReadFile(args[0]); err == nil {
				set, err = npmTruth(b)
			}
		case "truth-go":
			set, err = goTruth(args[0])
		}
		if err != nil {
			return err
		}
		return writeTruth(stdout, set)
	case "report":
		runsPath := fl.String("runs", "", "results.tsv written by run.sh")
		truthDir := fl.String("truth", "", "ground truth directory (one subdirectory per image)")
		out := fl.String("o", "", "also write the markdown here")
		header := fl.String("header", "# crowsnest peer benchmark", "first lines of the document")
		if err := fl.Parse(args); err != nil {
			return err
		}
		runs, err := readRuns(*runsPath)
		if err != nil {
			return err
		}
		w := stdout
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = io.MultiWriter(stdout, f)
		}
		return report(w, medians(runs), *truthDir, *header)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// writeFileAtomic writes path through a temporary file so an interrupted run leaves no partial
// layer for the next run to trust.
func writeFileAtomic(path string, fn func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
