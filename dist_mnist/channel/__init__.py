"""The round channel: ZeroMQ between the driver and its workers. No Spark here.

The driver binds one ROUTER socket; each worker connects one DEALER socket for the whole run
and says hello. A round is one multipart message each way: [kind, JSON metadata, the vector
in frames of at most CHUNK_BYTES]. Two kinds of address:

- "tcp" (a cluster): every connection is encrypted and authenticated with ZeroMQ's CURVE.
  For each run the driver makes a server key pair and one client key pair per worker; the
  workers get theirs inside the Spark task (never on a command line, in a log or in a file),
  and a ZAP handler admits only those keys, each as its own worker
  (guard.py, which also bounds connections that have not authenticated).
  There is no clear-text fallback: without CURVE in libzmq, the TCP channel refuses to start.
- "ipc" (a local master): a Unix socket in a fresh 0700 directory, removed at shutdown. Only
  this user's processes on this host can connect and nothing crosses a network, so rounds
  are not encrypted there (CURVE costs milliseconds a round: benchmarks/channels.py). The
  vectors themselves go through files in a private directory on /dev/shm (shm.py): the
  driver writes a round's vector once and every worker reads it in place, each worker writes
  its sums where the driver reads them; the socket carries only the messages.

Every message is bound to the round it belongs to: the driver's carry (run, generation,
round, worker), and a worker's answer echoes them. The driver drops, and counts, anything
that does not answer the round in flight: another run, an earlier generation or round, a
second answer, a worker speaking for another than its key's, a malformed message. Before a
peer has authenticated, the driver holds at most one frame of it (messages.frame_sizes:
sized from the plan, and over TCP never above CHUNK_BYTES).

server.py    the driver's end (RoundServer)
worker.py    the worker's end (serve_rounds, probe)
endpoint.py  what a worker is given to reach the driver (address, run id, CURVE keys)
messages.py  a round and a result as ZeroMQ frames
guard.py     who may connect over TCP: the ZAP handler and the bound on unauthenticated peers
shm.py       a local master's vectors through private files on /dev/shm
chain.py     the workers' sums added along a chain (reduce = "chain")
"""
