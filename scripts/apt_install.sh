#!/usr/bin/env bash
# apt_install.sh PACKAGE PATH_GLOB: installs Debian's PACKAGE with apt-get unless a file matching PATH_GLOB is
# already there, then checks that one is. Needs root or sudo when it has to install.
set -euo pipefail
package="$1"
installed="$2"

if compgen -G "$installed" >/dev/null; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "apt_install.sh: $package is missing ($installed) and neither root nor sudo is available" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "$package"
compgen -G "$installed" >/dev/null
