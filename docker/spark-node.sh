#!/usr/bin/env bash
# Start one Spark standalone daemon (master or worker) in the foreground.
#
#   spark-node.sh master
#   spark-node.sh worker spark://HOST:PORT
#
# Used by docker/docker-compose.yml and by tests/cluster on loopback, so both
# run exactly the same daemon command. Settings come from the environment:
#   SPARK_HOME                 Spark install (default: the pip-installed pyspark)
#   SPARK_MASTER_HOST          master: address to bind and advertise
#   SPARK_MASTER_PORT          master: RPC port (default 7077)
#   SPARK_MASTER_WEBUI_PORT    master: web UI port (default 8080)
#   SPARK_WORKER_HOST          worker: address to bind and advertise
#   SPARK_WORKER_CORES         worker: cores offered to executors (default 1)
#   SPARK_WORKER_MEMORY        worker: memory offered to executors (default 2g)
#   SPARK_WORKER_PORT          worker: RPC port (default: random)
#   SPARK_WORKER_WEBUI_PORT    worker: web UI port (default 8081)
#   SPARK_AUTH_SECRET          when set: spark.authenticate=true with this secret
# The script execs spark-class, and spark-class execs java, so this process's
# pid is the daemon JVM's pid.
set -euo pipefail

die() {
  echo "spark-node: error: $*" >&2
  exit 2
}

usage="usage: spark-node.sh master | worker spark://HOST:PORT"
role="${1:-}"
case "$role" in
  master)
    [[ $# -eq 1 ]] || die "master takes no arguments; $usage"
    ;;
  worker)
    [[ $# -eq 2 ]] || die "worker needs exactly one master URL; $usage"
    [[ "$2" =~ ^spark://[^/]+:[0-9]+$ ]] || die "bad master URL '$2'; expected spark://HOST:PORT"
    ;;
  "")
    die "missing role; $usage"
    ;;
  *)
    die "unknown role '$role'; $usage"
    ;;
esac

if [[ -z "${SPARK_HOME:-}" ]]; then
  # pip's pyspark is a full Spark distribution (jars, bin/spark-class).
  SPARK_HOME="$(python3 -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" ||
    die "SPARK_HOME is not set and python3 cannot import pyspark; set SPARK_HOME or pip install pyspark"
  export SPARK_HOME
fi
[[ -x "$SPARK_HOME/bin/spark-class" ]] || die "no executable bin/spark-class under SPARK_HOME=$SPARK_HOME"

args=()
if [[ "$role" == master ]]; then
  class=org.apache.spark.deploy.master.Master
  [[ -n "${SPARK_MASTER_HOST:-}" ]] && args+=(--host "$SPARK_MASTER_HOST")
  args+=(--port "${SPARK_MASTER_PORT:-7077}" --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}")
else
  class=org.apache.spark.deploy.worker.Worker
  [[ -n "${SPARK_WORKER_HOST:-}" ]] && args+=(--host "$SPARK_WORKER_HOST")
  [[ -n "${SPARK_WORKER_PORT:-}" ]] && args+=(--port "$SPARK_WORKER_PORT")
  args+=(--webui-port "${SPARK_WORKER_WEBUI_PORT:-8081}"
    --cores "${SPARK_WORKER_CORES:-1}" --memory "${SPARK_WORKER_MEMORY:-2g}")
fi

if [[ -n "${SPARK_AUTH_SECRET:-}" ]]; then
  # Java properties would strip or unescape these, silently changing the secret.
  [[ "$SPARK_AUTH_SECRET" =~ [[:space:]\\] ]] && die "SPARK_AUTH_SECRET must not contain whitespace or backslashes"
  # The secret goes in a private properties file, not a -D flag, so that `ps`
  # never shows it. The file is unlinked before the JVM starts, which reads it
  # through the descriptor it inherits (/dev/fd/3): nothing is left on disk.
  conf_dir="$(mktemp -d "${TMPDIR:-/tmp}/spark-node.XXXXXX")"  # mode 700
  props="$conf_dir/spark-node.properties"
  defaults="${SPARK_CONF_DIR:-$SPARK_HOME/conf}/spark-defaults.conf"
  (
    umask 077
    {
      # --properties-file replaces spark-defaults.conf, so carry its settings over.
      if [[ -f "$defaults" ]]; then cat "$defaults"; echo; fi
      echo "spark.authenticate true"
      printf 'spark.authenticate.secret %s\n' "$SPARK_AUTH_SECRET"
    } >"$props"
  )
  exec 3<"$props"
  rm -rf "$conf_dir"
  args+=(--properties-file /dev/fd/3)
  unset SPARK_AUTH_SECRET
fi

[[ "$role" == worker ]] && args+=("$2")
exec "$SPARK_HOME/bin/spark-class" "$class" "${args[@]}"
