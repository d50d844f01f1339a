package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crowsnest-dev/crowsnest/internal/report"
	"github.com/crowsnest-dev/crowsnest/internal/testutil/artifactory"
)

// printResults writes what `crowsnest images` and `crowsnest cves` show for the demo's store,
// which images the globs left out, the webhook that brought the last push in, and what to run
// next.
func (d *demo) printResults(ctx context.Context, seeds []fixture, pushed fixture) error {
	out := d.opts.Out
	rows, err := d.store.Images(ctx, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nImages the watcher indexed (%s images):\n\n", d.opts.Command)
	if err := report.ImagesTable(out, rows); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nLeft out by --registry include=%s,exclude=%s:\n", Include, Exclude)
	for _, f := range seeds {
		if !strings.HasPrefix(f.Name, "frontend") {
			fmt.Fprintf(out, "  %s/%s:%s  (%s)\n", Repository, f.Name, f.Tag, f.Why)
		}
	}

	pushedName := Repository + "/" + pushed.Name + ":" + pushed.Tag
	fmt.Fprintf(out, "\n%s was pushed after the backfill and indexed from Artifactory's webhook%s.\n",
		pushedName, d.deliveryNote(pushed))

	shown := Repository + "/frontend-web"
	for _, r := range rows {
		if r.Repository != shown || r.Tag != "1.0" {
			continue
		}
		sb, err := d.store.Image(ctx, r.Digest)
		if err != nil {
			return err
		}
		found, err := d.store.Findings(ctx, r.Digest)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nVulnerabilities of %s:1.0 (%s cves %s:1.0):\n\n", shown, d.opts.Command, shown)
		if err := report.Render(out, report.Packages, &report.Report{SBOM: sb, Findings: found}); err != nil {
			return err
		}
		break
	}

	cmd := d.opts.Command + " "
	flag := " --data-dir " + shellQuote(d.dir)
	fmt.Fprintf(out, "\nThe demo's data is kept in %s. Explore it:\n\n", d.dir)
	for _, c := range []string{
		cmd + "images" + flag,
		cmd + "cves" + flag + " " + shown + ":1.1",
		cmd + "cves" + flag + " --format sarif " + Repository + "/frontend-api:1.0",
		cmd + "cves" + flag + " --only-severity critical,high --only-package-type apk,deb " + shown + ":1.0",
		cmd + "db status" + flag,
		cmd + "db update" + flag + "   # real advisories from osv.dev for the ecosystems above",
	} {
		fmt.Fprintln(out, "  "+c)
	}
	return nil
}

// deliveryNote describes the webhook delivery of f's push, as Artifactory's troubleshooting
// record has it (never its headers: one carries the signature).
func (d *demo) deliveryNote(f fixture) string {
	for _, a := range d.emu.Deliveries() {
		if a.Event.EventType != "pushed" || a.Response == nil {
			continue
		}
		var data struct {
			ImageName string `json:"image_name"`
			Tag       string `json:"tag"`
		}
		if json.Unmarshal([]byte(a.Event.Data), &data) != nil || data.Tag != f.Tag || !strings.HasSuffix(f.Name, data.ImageName) {
			continue
		}
		return fmt.Sprintf(" (event %s, signed with HMAC-SHA256, answered %d)", a.Event.ID, a.Response.Status)
	}
	return ""
}

// printRunning tells the user how to reach the services the demo keeps running. The password is
// in a file only its owner can read, so it never lands in a terminal log.
func (d *demo) printRunning() (pwFile string, err error) {
	pwFile = filepath.Join(d.dir, "artifactory-password")
	if err := os.WriteFile(pwFile, []byte(d.password+"\n"), 0o600); err != nil {
		return "", err
	}
	out := d.opts.Out
	fmt.Fprintf(out, "\nStill running until Ctrl-C:\n")
	fmt.Fprintf(out, "  Artifactory emulator  http://%s/artifactory (user %s, password in %s)\n", d.emuAddr, artifactory.DefaultUser, pwFile)
	fmt.Fprintf(out, "  Docker registry       %s/%s/<image>:<tag> (plain HTTP)\n", d.emuAddr, Repository)
	fmt.Fprintf(out, "  Webhook receiver      http://127.0.0.1:%d/ (Artifactory sends every push in %s to it)\n", d.webhookPort, Repository)
	ref := d.emuAddr + "/" + Repository + "/frontend-alpine:3.19"
	fmt.Fprintf(out, "\nPush an image (its name must match %s) and watch it being indexed:\n\n", Include)
	fmt.Fprintf(out, "  crane auth login %s -u %s --password-stdin < %s\n", d.emuAddr, artifactory.DefaultUser, shellQuote(pwFile))
	fmt.Fprintf(out, "  crane copy alpine:3.19 %s\n", ref)
	fmt.Fprintf(out, "  (or: docker login %s -u %s --password-stdin < %s; docker tag alpine:3.19 %s; docker push %s)\n",
		d.emuAddr, artifactory.DefaultUser, shellQuote(pwFile), ref, ref)
	fmt.Fprintf(out, "  %s images --data-dir %s\n", d.opts.Command, shellQuote(d.dir))
	return pwFile, nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
