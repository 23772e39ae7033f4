# Shared helpers for the setup scripts; source it, do not run it.
# Progress goes to stderr, one line per step, so stdout stays free for values callers capture.

CICD_SCRIPT_NAME=${CICD_SCRIPT_NAME:-$(basename "$0" .sh)}

step() { printf '%s: %s\n' "$CICD_SCRIPT_NAME" "$*" >&2; }

die() {
    printf '%s: error: %s\n' "$CICD_SCRIPT_NAME" "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# True when every named Debian package is installed.
apt_installed() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
}

# Install the named Debian packages that are missing (apt-get update at most once per process).
apt_ensure() {
    local missing=() pkg
    for pkg in "$@"; do
        apt_installed "$pkg" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    is_root || die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})"
    local log=/var/log/cicd-apt.log
    if [ -z "${CICD_APT_UPDATED:-}" ]; then
        step "apt-get update"
        apt-get update >>"$log" 2>&1 || die "apt-get update failed (see $log)"
        export CICD_APT_UPDATED=1
    fi
    step "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        >>"$log" 2>&1 || die "apt-get install ${missing[*]} failed (see $log)"
}
