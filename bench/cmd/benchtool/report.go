package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// run is one measured tool invocation, a line of run.sh's results.tsv:
// image, tool, phase, wall seconds, peak RSS KiB, exit status, output file.
type run struct {
	Image, Tool, Phase string
	Wall               float64
	RSSKiB             int64
	RC                 int
	Out                string

	found found
	err   string
}

func readRuns(p string) ([]*run, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []*run
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) != 7 {
			return nil, fmt.Errorf("%s:%d: want 7 tab-separated fields, got %d", p, n, len(fs))
		}
		r := &run{Image: fs[0], Tool: fs[1], Phase: fs[2], Out: fs[6]}
		r.Wall, _ = strconv.ParseFloat(fs[3], 64)
		r.RSSKiB, _ = strconv.ParseInt(fs[4], 10, 64)
		r.RC, _ = strconv.Atoi(fs[5])
		runs = append(runs, r)
	}
	return runs, sc.Err()
}

// medians keeps, for each image, tool and run kind, the run with the median wall time (the
// upper median for an even count), in the order the kinds first appear.
func medians(runs []*run) []*run {
	type key struct{ image, tool, phase string }
	groups := map[key][]*run{}
	var order []key
	for _, r := range runs {
		k := key{r.Image, r.Tool, r.Phase}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]*run, 0, len(order))
	for _, k := range order {
		g := groups[k]
		sort.SliceStable(g, func(i, j int) bool { return g[i].Wall < g[j].Wall })
		out = append(out, g[len(g)/2])
	}
	return out
}

// report scores every run against the images' ground truth and writes one markdown document.
func report(w io.Writer, runs []*run, truthDir, header string) error {
	truth := map[string]map[string][]nv{}
	var images []string
	for _, r := range runs {
		if _, ok := truth[r.Image]; ok {
			continue
		}
		images = append(images, r.Image)
		truth[r.Image] = map[string][]nv{}
		for _, e := range ecosystems {
			t, err := readTruth(filepath.Join(truthDir, r.Image, e+".txt"))
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			truth[r.Image][e] = t
		}
	}
	for _, r := range runs {
		if r.RC != 0 {
			r.err = fmt.Sprintf("exit %d", r.RC)
			if r.Out == "-" {
				r.err = "not built" // run.sh could not build the tool
			}
			continue
		}
		b, err := os.ReadFile(r.Out)
		if err != nil {
			r.err = "no output"
			continue
		}
		if r.found, err = parseSBOM(b); err != nil {
			r.err = "unreadable output"
		}
	}

	fmt.Fprintf(w, "%s\n\n", header)
	fmt.Fprintf(w, "## Ground truth (packages per ecosystem)\n\n| image | %s |\n|---|%s\n", strings.Join(ecosystems, " | "), strings.Repeat("---:|", len(ecosystems)))
	for _, img := range images {
		fmt.Fprintf(w, "| %s |", img)
		for _, e := range ecosystems {
			fmt.Fprintf(w, " %s |", dash(len(truth[img][e])))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "\n## Runs\n\nPackages found per ecosystem; in brackets the recall against the image's ground truth.\n\n")
	fmt.Fprintf(w, "| image | tool | run | wall s | peak RSS MiB | %s |\n|---|---|---|---:|---:|%s\n", strings.Join(ecosystems, " | "), strings.Repeat("---:|", len(ecosystems)))
	for _, r := range runs {
		fmt.Fprintf(w, "| %s | %s | %s | %.3f | %.0f |", r.Image, r.Tool, r.Phase, r.Wall, float64(r.RSSKiB)/1024)
		for _, e := range ecosystems {
			if r.err != "" {
				fmt.Fprintf(w, " %s |", r.err)
				continue
			}
			cell := dash(len(r.found[e]))
			if t := truth[r.Image][e]; len(t) > 0 {
				rc, _ := recall(t, e, r.found)
				cell += fmt.Sprintf(" (%.1f%%)", 100*rc)
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}

	summary(w, images, runs, truth)

	fmt.Fprintf(w, "\n## Missed ground truth\n\nUp to 8 missed packages per run and ecosystem.\n\n")
	any := false
	for _, r := range runs {
		if r.err != "" || r.Phase == "warm" {
			continue
		}
		for _, e := range ecosystems {
			_, missed := recall(truth[r.Image][e], e, r.found)
			if len(missed) == 0 {
				continue
			}
			any = true
			var s []string
			for i, m := range missed {
				if i == 8 {
					s = append(s, fmt.Sprintf("... %d more", len(missed)-8))
					break
				}
				s = append(s, m.Name+"@"+m.Version)
			}
			fmt.Fprintf(w, "- %s, %s, %s: %d missed: %s\n", r.Image, r.Tool, e, len(missed), strings.Join(s, ", "))
		}
	}
	if !any {
		fmt.Fprintln(w, "None.")
	}
	return nil
}

// summary compares crowsnest with Syft against the project's targets: cold >= 3x faster, warm
// >= 20x faster, peak RSS <= half, recall >= Syft's in every ecosystem.
func summary(w io.Writer, images []string, runs []*run, truth map[string]map[string][]nv) {
	get := func(img, tool, phase string) *run {
		for _, r := range runs {
			if r.Image == img && r.Tool == tool && r.Phase == phase && r.err == "" {
				return r
			}
		}
		return nil
	}
	fmt.Fprintf(w, "\n## crowsnest against Syft (targets: cold >= 3x, warm >= 20x, RSS <= 0.5x, recall >= Syft)\n\n")
	fmt.Fprintf(w, "| image | cold speed-up | warm speed-up | RSS ratio | recall >= Syft |\n|---|---:|---:|---:|---|\n")
	for _, img := range images {
		syft, cold, warm := get(img, "syft", "cold"), get(img, "crowsnest", "cold"), get(img, "crowsnest", "warm")
		if syft == nil || cold == nil {
			fmt.Fprintf(w, "| %s | n/a | n/a | n/a | n/a |\n", img)
			continue
		}
		warmCell := "n/a"
		if warm != nil {
			warmCell = ratio(syft.Wall, warm.Wall, 20)
		}
		var worse []string
		for _, e := range ecosystems {
			t := truth[img][e]
			if len(t) == 0 {
				continue
			}
			rs, _ := recall(t, e, syft.found)
			rc, _ := recall(t, e, cold.found)
			if rc < rs {
				worse = append(worse, fmt.Sprintf("%s %.1f%% < %.1f%%", e, 100*rc, 100*rs))
			}
		}
		recallCell := "yes"
		if len(worse) > 0 {
			recallCell = "NO: " + strings.Join(worse, ", ")
		}
		rss := float64(cold.RSSKiB) / float64(syft.RSSKiB)
		mark := "ok"
		if rss > 0.5 {
			mark = "MISS"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2fx %s | %s |\n", img, ratio(syft.Wall, cold.Wall, 3), warmCell, rss, mark, recallCell)
	}
}

func ratio(peer, ours, target float64) string {
	if ours <= 0 {
		return "n/a"
	}
	x := peer / ours
	mark := "ok"
	if x < target {
		mark = "MISS"
	}
	return fmt.Sprintf("%.1fx %s", x, mark)
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
