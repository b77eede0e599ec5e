#!/usr/bin/env bash
# spark-submit to $SPARK_MASTER_URL, with RPC authentication when SPARK_AUTH_SECRET is set.
#
#   SPARK_MASTER_URL=spark://spark-master:7077 docker/spark-submit.sh [spark-submit options] app.py [args]
#
# SPARK_HOME defaults to the pip-installed pyspark (the venv's, once activated), as in spark-node.sh.
# The secret reaches spark-submit in a private properties file instead of a
# --conf flag, so `ps` never shows it; the file is removed when the job ends.
set -euo pipefail

die() {
  echo "spark-submit.sh: error: $*" >&2
  exit 2
}

[[ -n "${SPARK_MASTER_URL:-}" ]] || die "set SPARK_MASTER_URL, e.g. spark://spark-master:7077"
if [[ -z "${SPARK_HOME:-}" ]]; then
  # pip's pyspark is a full Spark distribution (jars, bin/spark-submit), as in spark-node.sh
  SPARK_HOME="$(python3 -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" ||
    die "SPARK_HOME is not set and python3 cannot import pyspark; set SPARK_HOME or activate the venv (. .venv/bin/activate)"
  export SPARK_HOME
fi
[[ -x "$SPARK_HOME/bin/spark-submit" ]] || die "no executable bin/spark-submit under SPARK_HOME=$SPARK_HOME"

args=(--master "$SPARK_MASTER_URL")
if [[ -n "${SPARK_AUTH_SECRET:-}" ]]; then
  [[ "$SPARK_AUTH_SECRET" =~ [[:space:]\\] ]] && die "SPARK_AUTH_SECRET must not contain whitespace or backslashes"
  conf_dir="$(mktemp -d "${TMPDIR:-/tmp}/spark-submit.XXXXXX")"  # mode 700
  trap 'rm -rf "$conf_dir"' EXIT
  defaults="${SPARK_CONF_DIR:-$SPARK_HOME/conf}/spark-defaults.conf"
  (
    umask 077
    {
      # --properties-file replaces spark-defaults.conf, so carry its settings over.
      if [[ -f "$defaults" ]]; then cat "$defaults"; echo; fi
      echo "spark.authenticate true"
      printf 'spark.authenticate.secret %s\n' "$SPARK_AUTH_SECRET"
    } >"$conf_dir/auth.properties"
  )
  args+=(--properties-file "$conf_dir/auth.properties")
fi

# Not exec: the EXIT trap must run after the job to delete the file.
"$SPARK_HOME/bin/spark-submit" "${args[@]}" "$@"
