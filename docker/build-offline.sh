#!/usr/bin/env bash
# Build the dist-mnist image without any container registry:
#
#   docker/build-offline.sh [IMAGE]        (default: dist-mnist-spark:$SPARK_VERSION)
#
# 1. a Debian base image, debootstrapped from Debian's package archive and
#    imported (dist-mnist-debian:$DEBIAN_SUITE; needs root and debootstrap);
# 2. a wheelhouse: pyspark[connect]==$SPARK_VERSION (the Connect server's clients: grpcio, ...)
#    and the project's dependencies,
#    downloaded by the host's pip (so the host's pip settings apply);
# 3. docker/Dockerfile.offline-base on top: Java from apt, Spark from the
#    wheelhouse (dist-mnist-base:$SPARK_VERSION);
# 4. docker/Dockerfile with BASE set to that image: the same project image as
#    the official apache/spark base gives, with the same entry script.
# Steps 1-2 are skipped when their result exists (REBUILD=1 redoes them); docker's
# build cache makes 3-4 quick when nothing changed. Run from anywhere.
# Settings: SPARK_VERSION (4.0.1), DEBIAN_SUITE (bookworm), PYTHON (python3, the
# same minor version as the suite's python3), BUILD_DIR (build/offline).
set -euo pipefail

die() {
  echo "build-offline: error: $*" >&2
  exit 2
}

cd "$(dirname "$0")/.."
spark_version="${SPARK_VERSION:-4.0.1}"
suite="${DEBIAN_SUITE:-bookworm}"
python="${PYTHON:-python3}"
build_dir="${BUILD_DIR:-build/offline}"
image="${1:-dist-mnist-spark:$spark_version}"
debian_image="dist-mnist-debian:$suite"
base_image="dist-mnist-base:$spark_version"
wheels="$build_dir/wheels-$spark_version"
# Debian bookworm ships Python 3.11: wheels with compiled code must match it.
image_python=3.11

[[ $# -le 1 ]] || die "usage: build-offline.sh [IMAGE]"
command -v docker >/dev/null || die "docker not found (apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or set DOCKER_HOST)"

elapsed() {
  echo "build-offline: $1 took $(($(date +%s) - $2)) s"
}

if [[ -n "${REBUILD:-}" ]] || ! docker image inspect "$debian_image" >/dev/null 2>&1; then
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root; run as root or import $debian_image yourself"
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  start=$(date +%s)
  mkdir -p "$build_dir"
  rootfs="$(mktemp -d "$build_dir/rootfs.XXXXXX")"
  trap 'rm -rf --one-file-system "$rootfs"' EXIT
  # Debootstrap's default mirror: Debian's own archive, as for the host's apt.
  debootstrap --variant=minbase --include=python3 "$suite" "$rootfs" >"$build_dir/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $build_dir/debootstrap.log"
  tar -C "$rootfs" -c . | docker import - "$debian_image" >/dev/null
  rm -rf --one-file-system "$rootfs"
  trap - EXIT
  elapsed "debootstrap + import ($debian_image)" "$start"
fi

# setuptools and wheel: pip builds the project (and pyspark's sdist) in the image. The list is
# kept in .complete, so a wheelhouse made before a dependency was added is made again.
requirements="pyspark[connect]==$spark_version numpy numba pyarrow pyzmq pandas>=2.2,<3 findspark tqdm setuptools>=77 wheel"
if [[ -n "${REBUILD:-}" ]] || [[ "$(cat "$wheels/.complete" 2>/dev/null)" != "$requirements" ]]; then
  host_python="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ||
    die "cannot run $python; set PYTHON to a Python $image_python"
  [[ "$host_python" == "$image_python" ]] ||
    die "$python is Python $host_python; the image's is $image_python: set PYTHON to a Python $image_python"
  start=$(date +%s)
  rm -rf "$wheels"
  # shellcheck disable=SC2086 # one word a requirement
  "$python" -m pip download --quiet --dest "$wheels" $requirements || die "pip download failed"
  echo "$requirements" >"$wheels/.complete"
  elapsed "wheelhouse ($wheels)" "$start"
fi

build() {  # build LOG DOCKER-BUILD-ARGS...: one image, its output kept in LOG
  local log="$build_dir/$1" start
  start=$(date +%s)
  shift
  docker build --network host "$@" >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "docker build failed; see $log"; }
  elapsed "image ${*: -2:1}" "$start"
}

mkdir -p "$build_dir"
build base-image.log -f docker/Dockerfile.offline-base --build-arg "DEBIAN_IMAGE=$debian_image" \
  --build-arg "SPARK_VERSION=$spark_version" -t "$base_image" "$wheels"
build image.log -f docker/Dockerfile --build-arg "BASE=$base_image" --build-arg "SPARK_VERSION=$spark_version" \
  -t "$image" .
