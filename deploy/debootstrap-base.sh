#!/usr/bin/env bash
# Build the Dockerfile's BASE from Debian's archive, for hosts that reach no image registry (only the Debian mirror):
# a minimal Debian 12 root filesystem (debootstrap, as root) imported as localhost/guard-base:bookworm.
#   sudo deploy/debootstrap-base.sh [podman|docker]      # then: --build-arg BASE=localhost/guard-base:bookworm
set -euo pipefail
engine=${1:-podman}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >&2
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | "$engine" import - localhost/guard-base:bookworm
