#!/usr/bin/env bash
# images.sh builds the benchmark images from real packages, records each image's ground truth and
# pushes the images to a local registry. Everything is cached under bench/.cache; a step runs only
# when its output is missing (delete the output, or pass --rebuild, to redo it).
#
#   bench/images.sh [--rebuild] [--keep-registry]
#
# Needs root (debootstrap, chroot), debootstrap, docker-registry, npm, go. Network: the host's
# Debian mirror, the npm registry and the Go module proxy.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REBUILD=0
KEEP_REGISTRY=0
for a in "$@"; do
	case $a in
	--rebuild) REBUILD=1 ;;
	--keep-registry) KEEP_REGISTRY=1 ;;
	*) die "unknown argument $a" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "images.sh needs root (debootstrap and chroot)"
ROOTFS=$CACHE/rootfs
LAYERS=$CACHE/layers
TRUTH=$CACHE/truth
SRC=$CACHE/src
mkdir -p "$ROOTFS" "$LAYERS" "$TRUTH" "$SRC" "$BIN" "$CACHE/logs"
if [ $REBUILD = 1 ]; then
	log "rebuild: dropping cached rootfs, layers and truth"
	rm -rf "$ROOTFS" "$LAYERS" "$TRUTH" "$SRC" "$CACHE/registry/storage"
	mkdir -p "$ROOTFS" "$LAYERS" "$TRUTH" "$SRC"
fi

PY_JAVA_PKGS=(
	python3-requests python3-yaml python3-jinja2 python3-cryptography python3-dateutil
	python3-setuptools python3-six
	libcommons-lang3-java libcommons-io-java libjackson2-core-java libjackson2-databind-java
	libguava-java libslf4j-java liblog4j2-java libcommons-codec-java
)

# in_chroot runs a command inside DIR with /proc and /dev mounted and the host's apt sources and DNS, and
# always undoes those changes so that none of them ends up in a layer.
in_chroot() {
	local dir=$1
	shift
	mount -t proc proc "$dir/proc"
	mount --bind /dev "$dir/dev"
	cp -a "$dir/etc/resolv.conf" "$dir/etc/resolv.conf.bench" 2>/dev/null || true
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
	mv "$dir/etc/apt/sources.list" "$dir/etc/apt/sources.list.bench"
	mkdir -p "$dir/etc/apt/sources.list.d"
	cp /etc/apt/sources.list.d/*.sources "$dir/etc/apt/sources.list.d/" 2>/dev/null || true
	[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$dir/etc/apt/sources.list"
	local rc=0
	chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		LC_ALL=C "$@" || rc=$?
	umount "$dir/proc" "$dir/dev"
	rm -f "$dir/etc/apt/sources.list"
	for f in /etc/apt/sources.list.d/*.sources; do rm -f "$dir/etc/apt/sources.list.d/$(basename "$f")"; done
	mv "$dir/etc/apt/sources.list.bench" "$dir/etc/apt/sources.list"
	if [ -e "$dir/etc/resolv.conf.bench" ]; then mv "$dir/etc/resolv.conf.bench" "$dir/etc/resolv.conf"; else rm -f "$dir/etc/resolv.conf"; fi
	return $rc
}

dpkg_truth() { # ROOT OUT
	dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' |
		awk '$1=="ii" {print $2, $3}' | sort -u >"$2"
}

build_bookworm() {
	local dir=$ROOTFS/bookworm
	if [ ! -d "$dir" ]; then
		local mirror
		mirror=$(debian_mirror) || die "no Debian bookworm mirror in the host's apt sources"
		log "debootstrap bookworm (minbase + gpgv, as the official debian image has) from the host's mirror"
		rm -rf "$dir.tmp"
		debootstrap --variant=minbase --include=gpgv bookworm "$dir.tmp" "$mirror" >"$CACHE/logs/debootstrap.log" 2>&1 ||
			die "debootstrap failed; see $CACHE/logs/debootstrap.log"
		# What a published debian image does: no downloaded .debs, no device nodes.
		rm -rf "$dir.tmp"/var/cache/apt/archives/*.deb "$dir.tmp"/var/lib/apt/lists/*
		find "$dir.tmp/dev" -mindepth 1 -delete
		mv "$dir.tmp" "$dir"
	fi
	[ -f "$LAYERS/bookworm.tar" ] || benchtool layer -o "$LAYERS/bookworm.tar" "$dir"
	mkdir -p "$TRUTH/bookworm"
	dpkg_truth "$dir" "$TRUTH/bookworm/deb.txt"
}

build_py_java() {
	local lower=$ROOTFS/bookworm dir=$ROOTFS/bookworm-py-java
	if [ ! -d "$dir" ]; then
		log "bookworm-py-java: apt-get install ${PY_JAVA_PKGS[*]}"
		rm -rf "$dir.tmp"
		cp -a "$lower" "$dir.tmp"
		in_chroot "$dir.tmp" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PY_JAVA_PKGS[*]} && apt-get clean" \
			>"$CACHE/logs/py-java-apt.log" 2>&1 || die "apt-get install in chroot failed; see $CACHE/logs/py-java-apt.log"
		rm -rf "$dir.tmp"/var/lib/apt/lists/*
		mv "$dir.tmp" "$dir"
	fi
	[ -f "$LAYERS/py-java.tar" ] || benchtool layer -lower "$lower" -o "$LAYERS/py-java.tar" "$dir"
	mkdir -p "$TRUTH/bookworm-py-java"
	dpkg_truth "$dir" "$TRUTH/bookworm-py-java/deb.txt"
	benchtool truth-python "$dir" >"$TRUTH/bookworm-py-java/pypi.txt"
	benchtool truth-java "$dir" >"$TRUTH/bookworm-py-java/maven.txt"
}

build_npm_app() {
	local dir=$SRC/npm-app
	if [ ! -d "$dir/app/node_modules" ]; then
		log "npm-app: npm ci ($(npm --version))"
		rm -rf "$dir"
		mkdir -p "$dir/app"
		cp "$BENCH_DIR/npmapp/package.json" "$BENCH_DIR/npmapp/package-lock.json" "$BENCH_DIR/npmapp/index.js" "$dir/app/"
		(cd "$dir/app" && npm ci --no-audit --no-fund >"$CACHE/logs/npm-ci.log" 2>&1) ||
			die "npm ci failed; see $CACHE/logs/npm-ci.log"
	fi
	[ -f "$LAYERS/npm-app.tar" ] || benchtool layer -o "$LAYERS/npm-app.tar" "$dir"
	mkdir -p "$TRUTH/npm-app"
	cp "$TRUTH/bookworm/deb.txt" "$TRUTH/npm-app/deb.txt"
	(cd "$dir/app" && npm ls --all --json >"$CACHE/logs/npm-ls.json" 2>"$CACHE/logs/npm-ls.err") ||
		die "npm ls failed; see $CACHE/logs/npm-ls.err"
	benchtool truth-npm "$CACHE/logs/npm-ls.json" >"$TRUTH/npm-app/npm.txt"
}

build_go_app() {
	local dir=$SRC/go-app
	if [ ! -x "$dir/usr/local/bin/goapp" ]; then
		log "go-app: go build bench/goapp ($(go env GOVERSION))"
		rm -rf "$dir"
		mkdir -p "$dir/usr/local/bin"
		(cd "$BENCH_DIR/goapp" && CGO_ENABLED=0 go build -trimpath -o "$dir/usr/local/bin/goapp" .) ||
			die "go build bench/goapp failed"
	fi
	[ -f "$LAYERS/go-app.tar" ] || benchtool layer -o "$LAYERS/go-app.tar" "$dir"
	mkdir -p "$TRUTH/go-app"
	cp "$TRUTH/bookworm/deb.txt" "$TRUTH/go-app/deb.txt"
	go version -m "$dir/usr/local/bin/goapp" >"$CACHE/logs/goapp-version.txt"
	benchtool truth-go "$dir/usr/local/bin/goapp" >"$TRUTH/go-app/golang.txt"
}

build_bookworm
build_py_java
build_npm_app
build_go_app

start_registry
[ $KEEP_REGISTRY = 1 ] || trap stop_registry EXIT
push() { # NAME LAYER...: pushes unless the registry has the image already
	local name=$1
	shift
	if curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REG_ADDR/v2/bench/$name/manifests/1"; then
		log "$REG_ADDR/bench/$name:1 already pushed"
		return
	fi
	benchtool push -ref "$REG_ADDR/bench/$name:1" "$@"
}
push bookworm "$LAYERS/bookworm.tar"
push bookworm-py-java "$LAYERS/bookworm.tar" "$LAYERS/py-java.tar"
push npm-app "$LAYERS/bookworm.tar" "$LAYERS/npm-app.tar"
push go-app "$LAYERS/bookworm.tar" "$LAYERS/go-app.tar"

for i in "${IMAGES[@]}"; do
	printf '%-18s' "$i"
	for f in "$TRUTH/$i"/*.txt; do printf ' %s=%s' "$(basename "$f" .txt)" "$(wc -l <"$f")"; done
	echo
done
log "images ready in $REG_ADDR/bench/{$(
	IFS=,
	echo "${IMAGES[*]}"
)}:1"
