#!/usr/bin/env bash
# run.sh measures crowsnest, Syft and Trivy on the benchmark images in one run: wall time, peak
# RSS, packages per ecosystem and recall against each image's ground truth. It prints one
# markdown report and writes it to bench/out/results.md.
#
#   bench/run.sh [-n REPEAT] [IMAGE...]     (images: bookworm bookworm-py-java npm-app go-app)
#
# -n REPEAT runs every measurement REPEAT times, in rounds over all images and tools, and reports
# the run with the median wall time (the machine is shared; one run can be noisy). Needs root the first time (images.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SYFT_VERSION=v1.57.1
TRIVY_VERSION=v0.74.0
REPEAT=1
while getopts n: opt; do
	case $opt in
	n) REPEAT=$OPTARG ;;
	*) die "usage: run.sh [-n REPEAT] [IMAGE...]" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] && IMAGES=("$@")

OUT=$BENCH_DIR/out
WORK=$CACHE/work
mkdir -p "$BIN" "$OUT" "$WORK" "$CACHE/logs"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install -y time)"

# installed_version prints the module version a peer in BIN was built from; `go install` builds
# carry no version in their own `version` output.
installed_version() {
	[ -x "$BIN/$1" ] || return 0
	go version -m "$BIN/$1" 2>/dev/null | awk '$1=="mod" {print $3; exit}'
}

# Peers are built from source with the Go toolchain; each takes minutes the first time, so both
# builds run in parallel.
install_peers() {
	local pids=()
	if [ "$(installed_version syft)" != "$SYFT_VERSION" ]; then
		log "go install syft@$SYFT_VERSION (minutes)"
		GOBIN=$BIN go install "github.com/anchore/syft/cmd/syft@$SYFT_VERSION" >"$CACHE/logs/syft-install.log" 2>&1 &
		pids+=($!)
	fi
	if [ "$(installed_version trivy)" != "$TRIVY_VERSION" ]; then
		log "go install trivy@$TRIVY_VERSION (minutes)"
		# Trivy v0.74 needs encoding/json/v2.
		GOEXPERIMENT=jsonv2 GOBIN=$BIN go install "github.com/aquasecurity/trivy/cmd/trivy@$TRIVY_VERSION" >"$CACHE/logs/trivy-install.log" 2>&1 &
		pids+=($!)
	fi
	for p in "${pids[@]}"; do wait "$p" || die "peer install failed; see $CACHE/logs/*-install.log"; done
}

CROWSNEST_OK=1
build_crowsnest() {
	log "go build ./cmd/crowsnest"
	if ! (cd "$REPO_DIR" && go build -o "$BIN/crowsnest" ./cmd/crowsnest) >"$CACHE/logs/crowsnest-build.log" 2>&1; then
		CROWSNEST_OK=0
		log "WARNING: crowsnest does not build; its runs are recorded as failed. See $CACHE/logs/crowsnest-build.log:"
		head -n 20 "$CACHE/logs/crowsnest-build.log" >&2
	fi
}

install_peers
build_crowsnest

start_registry
trap stop_registry EXIT
need_images=0
for i in "${IMAGES[@]}"; do
	[ -d "$CACHE/truth/$i" ] || need_images=1
	curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REG_ADDR/v2/bench/$i/manifests/1" || need_images=1
done
if [ $need_images = 1 ]; then
	log "images missing: running images.sh"
	"$BENCH_DIR/images.sh" --keep-registry
fi

RESULTS=$OUT/results.tsv
: >"$RESULTS"

# measure IMAGE TOOL PHASE OUTFILE PREP -- CMD...: runs PREP (resets caches), then CMD under
# /usr/bin/time, and appends the run to results.tsv (benchtool report keeps the median per
# image, tool and run kind).
measure() {
	local image=$1 tool=$2 phase=$3 outf=$4 prep=$5
	shift 6
	eval "$prep"
	local tf=$WORK/time.$$ rc=0 t0 t1 wall rss
	# Wall time from the nanosecond clock: /usr/bin/time's %e has 10 ms steps, too coarse
	# for warm runs. /usr/bin/time gives the peak RSS (%M, KiB).
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$tf" "$@" >"$CACHE/logs/$image.$tool.$phase.log" 2>&1 || rc=$?
	t1=$(date +%s%N)
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	rss=$(tail -n 1 "$tf")
	log "$(printf '%-17s %-9s %-4s %7ss %7s KiB rc=%s' "$image" "$tool" "$phase" "$wall" "$rss" "$rc")"
	[ $rc = 0 ] || tail -n 5 "$CACHE/logs/$image.$tool.$phase.log" >&2
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$image" "$tool" "$phase" "$wall" "$rss" "$rc" "$outf" >>"$RESULTS"
}

# Trivy refuses to scan jars without a Java DB ("--skip-java-db-update cannot be specified on the
# first run") and the real one is a download from ghcr.io. An empty DB of the same schema lets it
# run offline: jars are then named from pom.properties, MANIFEST.MF and file names only, with no
# SHA-1 lookup. It is copied into each cold cache: it is a download, not a per-image cache.
TRIVY_JAVA_DB=$CACHE/trivy-java-db-empty
make_trivy_java_db() {
	[ -f "$TRIVY_JAVA_DB/metadata.json" ] && return
	command -v sqlite3 >/dev/null || die "sqlite3 missing (apt-get install -y sqlite3)"
	rm -rf "$TRIVY_JAVA_DB"
	mkdir -p "$TRIVY_JAVA_DB"
	# Schema of github.com/aquasecurity/trivy-java-db pkg/db, SchemaVersion 1.
	sqlite3 "$TRIVY_JAVA_DB/trivy-java.db" "
		CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT);
		CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT, foreign key (artifact_id) references artifacts(id));
		CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id);
		CREATE INDEX indices_artifact_idx ON indices(artifact_id);
		CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1);"
	echo '{"Version":1,"NextUpdate":"2099-01-01T00:00:00Z","UpdatedAt":"2025-05-20T00:00:00Z","DownloadedAt":"2025-05-20T00:00:00Z"}' \
		>"$TRIVY_JAVA_DB/metadata.json"
}
make_trivy_java_db

# Peers run with no network but the local registry: no update checks, no remote license or
# Maven Central lookups, no vulnerability DB download.
export SYFT_CHECK_FOR_APP_UPDATE=false SYFT_REGISTRY_INSECURE_USE_HTTP=true
export SYFT_JAVA_USE_NETWORK=false SYFT_GOLANG_SEARCH_REMOTE_LICENSES=false SYFT_PYTHON_GUESS_UNPINNED_REQUIREMENTS=false
export TRIVY_DISABLE_TELEMETRY=true

# PREP arguments are single-quoted on purpose: measure evals them before each run.
# shellcheck disable=SC2016
# Repetitions go round all images and tools, so that a burst of load on this shared machine
# falls on every tool alike rather than on one tool's runs.
for rep in $(seq "$REPEAT"); do
	[ "$REPEAT" = 1 ] || log "round $rep of $REPEAT"
	for img in "${IMAGES[@]}"; do
		ref=$REG_ADDR/bench/$img:1
		o=$OUT/$img
		cn_data=$WORK/crowsnest-data
		if [ $CROWSNEST_OK = 1 ]; then
			measure "$img" crowsnest cold "$o.crowsnest.cold.json" 'rm -rf "$cn_data"' -- \
				"$BIN/crowsnest" sbom "registry://$ref" --format json --insecure-registry "$REG_ADDR" --data-dir "$cn_data" -o "$o.crowsnest.cold.json"
			# Warm: every layer is in the data dir from the cold run.
			measure "$img" crowsnest warm "$o.crowsnest.warm.json" ':' -- \
				"$BIN/crowsnest" sbom "registry://$ref" --format json --insecure-registry "$REG_ADDR" --data-dir "$cn_data" -o "$o.crowsnest.warm.json"
		else
			printf '%s\tcrowsnest\tcold\t0\t0\t127\t-\n%s\tcrowsnest\twarm\t0\t0\t127\t-\n' "$img" "$img" >>"$RESULTS"
		fi

		syft_tmp=$WORK/syft
		measure "$img" syft cold "$o.syft.json" 'rm -rf "$syft_tmp"; mkdir -p "$syft_tmp/tmp"' -- \
			env XDG_CACHE_HOME="$syft_tmp/cache" SYFT_CACHE_DIR="$syft_tmp/cache" TMPDIR="$syft_tmp/tmp" \
			"$BIN/syft" scan "registry:$ref" -q -o "syft-json=$o.syft.json"

		# --format cyclonedx turns vulnerability scanning off, so no vulnerability DB is needed.
		trivy_cache=$WORK/trivy-cache
		trivy_cmd=("$BIN/trivy" image --quiet --cache-dir "$trivy_cache" --image-src remote --insecure
			--offline-scan --skip-db-update --skip-java-db-update --skip-check-update --skip-version-check
			--disable-telemetry --format cyclonedx)
		measure "$img" trivy cold "$o.trivy.cold.json" 'rm -rf "$trivy_cache"; mkdir -p "$trivy_cache"; cp -a "$TRIVY_JAVA_DB" "$trivy_cache/java-db"' -- \
			"${trivy_cmd[@]}" --output "$o.trivy.cold.json" "$ref"
		measure "$img" trivy warm "$o.trivy.warm.json" ':' -- \
			"${trivy_cmd[@]}" --output "$o.trivy.warm.json" "$ref"
	done
done

header="# crowsnest peer benchmark

$(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end.
crowsnest $(cd "$REPO_DIR" && git rev-parse --short HEAD), syft $SYFT_VERSION, trivy $TRIVY_VERSION; median of $REPEAT run(s)."
benchtool report -runs "$RESULTS" -truth "$CACHE/truth" -o "$OUT/results.md" -header "$header"
