#!/usr/bin/env bash
# Build the local images the tests and the demo use, each only when the engine lacks it:
#   cicd-busybox:latest   ~2 MB: Debian's static busybox as /bin/sh and every applet
#   cicd-python:bookworm  Debian bookworm minbase with python3, pytest, pip, venv and git
# No registry is needed. The bookworm root filesystem is cached as a tarball (CICD_IMAGE_CACHE,
# default /var/cache/cicd-images) so re-creating the image after losing Docker's data is quick.
set -euo pipefail
CICD_SCRIPT_NAME=images
. "$(dirname "$0")/lib.sh"

BUSYBOX_IMAGE=cicd-busybox:latest
PYTHON_IMAGE=cicd-python:bookworm
PYTHON_PACKAGES=python3,python3-pytest,python3-pip,python3-venv,git
SUITE=bookworm
CACHE_DIR=${CICD_IMAGE_CACHE:-/var/cache/cicd-images}
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# The first Debian mirror apt is configured with for $SUITE (deb822 .sources or one-line lists).
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            function flush() {
                if (deb && has_suite && uri != "" && !found) { print uri; found = 1 }
                deb = 0; has_suite = 0; uri = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
    done
}

build_busybox() (
    # A subshell, so the EXIT trap cleans up the temporary root whatever happens.
    apt_ensure busybox-static
    busybox=/bin/busybox
    [ -x "$busybox" ] || die "$busybox is missing although busybox-static is installed"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root"/{bin,etc,root,tmp,workspace}
    chmod 1777 "$root/tmp"
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import --change "ENV PATH=$IMAGE_PATH" - "$BUSYBOX_IMAGE" >/dev/null
)

build_python() (
    # A subshell, so the EXIT trap cleans up the temporary root whatever happens.
    # The cache key changes with the package list, so a changed list rebuilds the tarball.
    key=$(printf '%s %s' "$SUITE" "$PYTHON_PACKAGES" | sha256sum | cut -c1-12)
    tarball="$CACHE_DIR/cicd-python-$SUITE-$key.tar"
    if [ ! -s "$tarball" ]; then
        is_root || die "building $PYTHON_IMAGE needs root (debootstrap)"
        apt_ensure debootstrap
        mirror=${CICD_DEBIAN_MIRROR:-$(debian_mirror | head -n1)}
        [ -n "$mirror" ] || die "no Debian mirror for '$SUITE' in /etc/apt/; set CICD_DEBIAN_MIRROR"
        mkdir -p "$CACHE_DIR"
        root=$(mktemp -d "$CACHE_DIR/root.XXXXXX")
        trap 'rm -rf "$root" "$tarball.part"' EXIT
        step "debootstrap $SUITE from $mirror (about a minute; log: $CACHE_DIR/debootstrap.log)"
        debootstrap --variant=minbase --include="$PYTHON_PACKAGES" "$SUITE" "$root" "$mirror" \
            >"$CACHE_DIR/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $CACHE_DIR/debootstrap.log"
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
        mkdir -p "$root/workspace"
        tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    fi
    docker import --change "ENV PATH=$IMAGE_PATH" "$tarball" "$PYTHON_IMAGE" >/dev/null
)

for image in "$BUSYBOX_IMAGE" "$PYTHON_IMAGE"; do
    if image_present "$image"; then
        step "image $image present"
        continue
    fi
    step "building image $image"
    case "$image" in
        "$BUSYBOX_IMAGE") build_busybox ;;
        "$PYTHON_IMAGE") build_python ;;
    esac
    step "image $image built"
done
