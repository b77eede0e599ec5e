"""The Spark edge: everything that needs a SparkSession (classic or Spark Connect).

session.py          building the session, or a Connect client; shipping the package
cluster.py          what the transports need of either kind of session (slots, cancel, addresses)
transport_choice.py which transport runs (barrier where it can, else a Spark job a round) and recovery
barrier.py          the persistent barrier stage: the driver's side
barrier_tasks.py    the persistent barrier stage: what its tasks run on the executors
jobs.py             one Spark job a round (the fallback)
executors.py        what the executors need first: the package shipped, their Python checked (once)
shard_cache.py      the executors' memory-mapped shards
evaluate.py         distributed evaluation (`dist-mnist evaluate`)
predict.py          distributed scoring to Parquet (`dist-mnist predict`)
connect_server.py   `dist-mnist connect-server`: a Spark Connect server, started and waited for
hadoopfs.py         small files through Hadoop's FileSystem (classic) or pyarrow (Connect)
packaging.py        the zip of dist_mnist that executors without the package import
"""
