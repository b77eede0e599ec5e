# Sourced by Spark's own scripts (spark-submit, spark-class) when this directory is SPARK_CONF_DIR
# (make exports it; `make .venv/.installed` links it as the venv's Spark's conf/).
#
# On a local master (local, local[N], local[*]) the driver binds to loopback: nothing beyond this
# host can reach it, and Spark does not print "Your hostname ... resolves to a loopback address"
# and "Set SPARK_LOCAL_IP" on every command. A cluster master (spark://, local-cluster[...], yarn,
# k8s://) and Spark's daemons keep Spark's own choice of address. `dist-mnist` decides the same in
# Python before it starts its JVM (its spark-submit says pyspark-shell and is left alone here).
if [ -z "${SPARK_LOCAL_IP:-}" ] && [ "${1:-}" = org.apache.spark.deploy.SparkSubmit ]; then
  dm_master="" dm_shell="" dm_prev=""
  for dm_arg in "$@"; do
    [ "$dm_prev" = --master ] && dm_master="$dm_arg"
    case "$dm_arg" in
      --master=*) dm_master="${dm_arg#--master=}" ;;
      pyspark-shell | pyspark-shell-main) dm_shell=1 ;;
    esac
    dm_prev="$dm_arg"
  done
  if [ -z "$dm_master" ] && [ -z "$dm_shell" ]; then  # spark-defaults.conf's, else spark-submit's local[*]
    dm_master="$(sed -n 's/^[[:space:]]*spark\.master[[:space:]=][[:space:]]*\([^[:space:]]*\).*/\1/p' \
      "${SPARK_CONF_DIR:-.}/spark-defaults.conf" 2>/dev/null | tail -n 1)"
    dm_master="${dm_master:-local[*]}"
  fi
  case "$dm_master" in
    local | local\[*) SPARK_LOCAL_IP=127.0.0.1 ;;
  esac
  unset dm_master dm_shell dm_prev dm_arg
fi
