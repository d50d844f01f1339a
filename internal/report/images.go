package report

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/crowsnest-dev/crowsnest/internal/store"
)

// CountsOf turns findings counted by severity word (as the store and the API give them) into Counts.
func CountsOf(bySeverity map[string]int) Counts {
	return Counts{Critical: bySeverity["critical"], High: bySeverity["high"], Medium: bySeverity["medium"],
		Low: bySeverity["low"], Unspecified: bySeverity["unspecified"]}
}

// ShortDigest abbreviates a digest for tables ("sha256:" and 12 hex digits).
func ShortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// ImagesTable writes the layout of `crowsnest images`: one row per tag and platform image.
func ImagesTable(w io.Writer, rows []store.ImageRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tPLATFORM\tPACKAGES\tVULNERABILITIES\tINDEXED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Repository, r.Tag, ShortDigest(r.Digest), r.Platform,
			r.Packages, CountsOf(r.Findings), r.IndexedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
