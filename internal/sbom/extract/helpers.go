package extract

import (
	"fmt"
	"io/fs"
	"strings"
)

// Warnings collects at most Max messages (100 when zero), so a hostile file cannot make a result
// huge; the rest are counted.
type Warnings struct {
	Max     int
	msgs    []string
	dropped int
}

// Addf records one warning.
func (w *Warnings) Addf(format string, args ...any) {
	max := w.Max
	if max <= 0 {
		max = 100
	}
	if len(w.msgs) >= max {
		w.dropped++
		return
	}
	w.msgs = append(w.msgs, fmt.Sprintf(format, args...))
}

// List returns the warnings, with a last line counting those left out.
func (w *Warnings) List() []string {
	if w.dropped > 0 {
		return append(w.msgs, fmt.Sprintf("%d more warnings not shown", w.dropped))
	}
	return w.msgs
}

// nonBinarySuffixes are file name endings of executable files that are never compiled programs.
var nonBinarySuffixes = [...]string{
	".sh", ".bash", ".py", ".pl", ".pm", ".rb", ".js", ".mjs", ".cjs", ".ts", ".php", ".lua",
	".txt", ".md", ".json", ".yaml", ".yml", ".xml", ".html", ".css", ".conf", ".cfg", ".ini",
	".c", ".h", ".rs", ".go", ".java", ".class", ".jar", ".png", ".jpg", ".gif", ".svg", ".ps1", ".bat",
}

// ExecutableCandidate reports, without allocating, whether a file may be a compiled program worth
// reading: a regular file with an exec bit, of size in (0, max], whose name is not that of a
// script, source or document. Binary extractors (Go build info, Rust audit data) share it.
func ExecutableCandidate(path string, mode fs.FileMode, size, max int64) bool {
	if !mode.IsRegular() || mode&0o111 == 0 || size <= 0 || size > max {
		return false
	}
	dot := strings.LastIndexByte(path, '.')
	if dot < 0 || dot < strings.LastIndexByte(path, '/') {
		return true
	}
	ext := path[dot:]
	for _, s := range nonBinarySuffixes {
		if len(ext) == len(s) && strings.EqualFold(ext, s) {
			return false
		}
	}
	return true
}
