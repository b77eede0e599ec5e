"""Building the SparkSession: checks the environment and sets what the trainer relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession


def check_environment() -> None:
    """Fail fast, in one line, when Python or Java cannot run Spark."""
    # pip refuses Python < 3.10 (requires-python), but spark-submit runs the zip of `make dist` as is
    if sys.version_info < (3, 10):  # noqa: UP036
        raise RuntimeError(
            f"dist-mnist needs Python 3.10 or newer, found {sys.version.split()[0]}; "
            "install it (help: pyenv or your OS package)"
        )
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java or not os.path.exists(java):
        raise RuntimeError(
            "Java not found: Spark 4 needs Java 17 or 21 "
            "(help: apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
        )
    try:
        # its status is not checked: the version it prints is (a broken java prints none)
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{java} -version failed ({e}); install Java 17 or 21") from None
    version = out.split('"')[1] if '"' in out else "?"
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major < 17:
        raise RuntimeError(
            f"Java {version} found at {java}; Spark 4 needs Java 17 or 21 (help: install openjdk-17 and set JAVA_HOME)"
        )


def import_pyspark():
    """pyspark, from the installed package or, through findspark, from SPARK_HOME."""
    try:
        import pyspark
    except ImportError:
        import findspark

        findspark.init()
        import pyspark
    return pyspark


def bind_to_loopback_if_local(master: str | None) -> None:
    """On a local master, bind the driver to loopback (SPARK_LOCAL_IP) before its JVM starts:
    nothing beyond this host can reach it, and Spark does not warn on every command that the
    hostname resolves to a loopback address. A cluster master keeps Spark's own address; so
    does a JVM already started (spark-submit: conf/spark-env.sh decides there) or a set SPARK_LOCAL_IP."""
    if "SPARK_LOCAL_IP" in os.environ or "PYSPARK_GATEWAY_PORT" in os.environ:
        return
    if is_local_master(master or configured_master() or "local[*]"):
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"


def configured_master() -> str | None:
    """spark.master from $SPARK_CONF_DIR/spark-defaults.conf, if it sets one."""
    path = Path(os.environ.get("SPARK_CONF_DIR", "")) / "spark-defaults.conf"
    try:
        lines = path.read_text().splitlines() if os.environ.get("SPARK_CONF_DIR") else []
    except OSError:
        return None
    found = [line.split(None, 1) for line in lines if line.strip().startswith("spark.master")]
    return next((parts[1].strip() for parts in reversed(found) if len(parts) == 2 and parts[0] == "spark.master"), None)


def get_context(app_name: str, master: str | None = None):
    """The active SparkContext, or a new one.

    `master` (dist-mnist --master) wins over spark-submit's and spark-defaults.conf's, which
    win over local[*]. Training needs no SparkSession: skipping the SQL engine saves seconds
    of start-up. Executors get one BLAS thread per task core: N single-threaded workers beat
    N oversubscribed ones, and OpenBLAS's threads spin badly on a backward pass's thin matrices.
    """
    bind_to_loopback_if_local(master)
    import_pyspark()
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # start the JVM first, so SparkConf sees spark-submit's settings
    conf = SparkConf().setAppName(app_name)
    if master:
        conf.setMaster(master)
    elif not conf.contains("spark.master"):
        conf.setMaster("local[*]")
    if (
        conf.get("spark.master", "").startswith("local")  # set by now, by one of the branches above
        and "PYSPARK_PYTHON" not in os.environ
        and not conf.contains("spark.pyspark.python")
    ):
        # Local workers run beside the driver: give them this interpreter and its packages
        # rather than whatever `python3` is first on PATH.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    conf.setIfMissing("spark.ui.showConsoleProgress", "false")  # our own progress lines instead
    threads = conf.get("spark.task.cpus", "1")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        conf.setIfMissing(f"spark.executorEnv.{var}", threads)
    sc = SparkContext.getOrCreate(conf)
    sc.setLogLevel(os.environ.get("DIST_MNIST_SPARK_LOG_LEVEL", "WARN"))
    return sc


def get_session(app_name: str, master: str | None = None):
    """A SparkSession on get_context's SparkContext, for DataFrame work beside training."""
    sc = get_context(app_name, master)
    from pyspark.sql import SparkSession

    return SparkSession(sc)


def set_jvm_log_level(level: str, log4j2_file: Path) -> None:
    """Spark's root log level before the SparkContext starts and logs its start-up INFO lines.

    Under spark-submit the JVM started before Python, maybe on Spark's default log4j profile
    (a Spark whose conf directory has no log4j2.properties), at INFO: load `log4j2_file` in
    its place, as a SPARK_CONF_DIR holding it would have.
    """
    import_pyspark()
    from py4j.protocol import Py4JError
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    assert jvm is not None  # _ensure_initialized started it
    log4j = jvm.org.apache.logging.log4j
    context = log4j.LogManager.getContext(False)
    if "org/apache/spark/log4j2" in str(context.getConfigLocation() or "") and log4j2_file.is_file():
        try:  # while this flag is set, Spark puts its default profile back (and says so) at each start
            spark_logging = getattr(getattr(jvm.org.apache.spark.internal, "Logging$"), "MODULE$")
            getattr(spark_logging, "org$apache$spark$internal$Logging$$defaultSparkLog4jConfig_$eq")(False)
        except Py4JError:  # a Spark without it: its default profile stays, at the level set below
            pass
        else:
            context.setConfigLocation(jvm.java.io.File(str(log4j2_file)).toURI())
    # spark-submit resets logging before it runs the application: have Spark set it up again
    # now (from the file in force: silent, unless it is Spark's own default profile)
    jvm.org.apache.spark.SparkConf(False).initializeLogIfNecessary(False)
    log4j.core.config.Configurator.setRootLevel(log4j.Level.toLevel(level, log4j.Level.WARN))


def default_parallelism(spark: SparkSession) -> int:
    """Spark's default parallelism for a session: the cores of local[*], or of the executors."""
    return leaf_parallelism(spark) if is_connect(spark) else spark.sparkContext.defaultParallelism


def server_answers(spark: SparkSession, seconds: float = 2.0) -> bool:
    """Whether a Connect session's server accepts calls now: its gRPC channel is ready within
    `seconds`, found without calling anything that retries."""
    import grpc

    channel = getattr(spark.client, "_channel", None)
    if channel is None:
        return True
    try:
        grpc.channel_ready_future(channel).result(timeout=seconds)
    except grpc.FutureTimeoutError:
        return False
    return True


def stop_session(spark: SparkSession) -> None:
    """Stop a session; a Connect client whose server no longer answers just closes its channel
    (stopping would ask the server, and retry for a minute)."""
    if is_connect(spark) and not server_answers(spark, 1.0):
        spark.client._channel.close()
    else:
        spark.stop()


def is_connect(spark: SparkSession) -> bool:
    """Whether `spark` is a Spark Connect session (no SparkContext, no JVM in this process).
    By its type: pyspark's is_remote() describes the process, not the session."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def connect_session(url: str, app_name: str):
    """A Spark Connect session at `url` (sc://HOST:PORT); a RuntimeError in seconds when nothing
    answers there (the client's own retries would go on for ten minutes)."""
    import_pyspark()
    try:
        from pyspark.sql.connect.client.retries import DefaultPolicy
    except ImportError as e:
        raise RuntimeError(
            f"Spark Connect needs pyspark's connect extra ({e}); help: pip install 'dist-mnist[connect]'"
        ) from None
    from pyspark.sql import SparkSession

    # through pyspark.sql's builder: it marks this process remote, which pyspark.sql.functions
    # and pyspark.ml go by (so a process holds Connect sessions or classic ones, not both)
    spark = SparkSession.builder.remote(url).appName(app_name).getOrCreate()
    spark.client.set_retry_policies([DefaultPolicy(max_retries=3, initial_backoff=100, max_backoff=1000)])
    try:
        _ = spark.version  # one round trip: is a server there?
    except Exception as e:  # noqa: BLE001 - any failure here means no usable server
        spark.client.close()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"no Spark Connect server answers at {url} ({first[:200]})") from None
    # from now on a call retries for about a minute (pyspark's default: ten), so a server that
    # dies mid-run ends the client's calls in bounded time (spark.cluster's watch tells the user)
    spark.client.set_retry_policies([DefaultPolicy(max_retries=8, initial_backoff=100, max_backoff=10_000)])
    spark._dist_mnist_url = url  # type: ignore[attr-defined]  # for messages: the URL as given
    return spark


def leaf_parallelism(spark: SparkSession) -> int:
    """The partitions Spark gives a scan it is not told how to split: spark.default.parallelism,
    else the cores of local[N] or of the executors (what sc.defaultParallelism says), asked
    through the DataFrame API so that a Connect client can ask it too."""
    from pyspark.sql import functions as F

    row = spark.range(1 << 16).select(F.spark_partition_id().alias("p")).agg(F.max("p")).first()
    assert row is not None  # an aggregate without grouping has one row
    return int(row[0]) + 1


def ship_package(spark: SparkSession) -> None:
    """Make this dist_mnist importable on the session's executors, once per application: a zip
    on their Python path (Connect: addArtifacts; classic: addPyFile), named by the version and a
    digest of the sources. Nothing on a local master, whose executors run this interpreter."""
    from dist_mnist.spark.packaging import package_zip

    if not is_connect(spark) and is_local_master(spark.sparkContext.master or ""):
        return
    zipped = package_zip()
    holder = spark if is_connect(spark) else spark.sparkContext
    if getattr(holder, "_dist_mnist_shipped", None) == zipped.name:
        return
    if is_connect(spark):
        spark.addArtifacts(str(zipped), pyfile=True)
    else:
        spark.sparkContext.addPyFile(str(zipped))
    holder._dist_mnist_shipped = zipped.name  # type: ignore[union-attr]  # a mark of our own on pyspark's object


def is_local_master(master: str) -> bool:
    """local or local[N]: executors inside this driver's JVM, running this interpreter (not local-cluster)."""
    return master == "local" or master.startswith("local[")
