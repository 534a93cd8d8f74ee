"""gunicorn settings for CPU-bound prediction (see docs/serving.md for the measurements).

gevent workers: each worker reads requests in greenlets, so a client that sends its
request slowly (or holds a connection open) costs a greenlet, not a worker. With sync
workers, two slow clients hold both workers and stall /predict for everyone: gunicorn's
design notes say sync workers need a buffering proxy in front, which the lab does not
have. Predict itself is CPU-bound and runs one request at a time per worker, as before.
Native thread pools are pinned to one thread per worker, before numpy is imported, so
workers do not oversubscribe the cores. GUNICORN_WORKER_CLASS=sync restores the old
behaviour (the benchmark runs both side by side).

Two workers by default, the lab's value (GUNICORN_WORKERS in .env.example): two servers
share the machine with MLflow and each worker holds its own copy of the model. A server
with the machine to itself does best with about one worker per CPU.
"""

import os
import shutil
import tempfile

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Fail fast when MLflow is down: the poller retries on its own schedule.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# Shared metrics across workers; must be set before prometheus_client is imported.
# Without a folder from the caller, one of our own, removed again when the server exits.
_OWN_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = tempfile.mkdtemp(prefix="serving-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_METRICS_DIR

# The workers share what they prepare (serving/prepare.py) and the last good model through
# the cache folder; without one from the caller, one of our own, removed on exit.
_OWN_CACHE_DIR = None
if not os.environ.get("SERVING_CACHE_DIR"):
    _OWN_CACHE_DIR = tempfile.mkdtemp(prefix="serving-cache-")
    os.environ["SERVING_CACHE_DIR"] = _OWN_CACHE_DIR

# The secret a server seals its prepared models with (serving/prepare.py): one per start.
os.environ.setdefault("SERVING_PREPARED_KEY", os.urandom(32).hex())

# Inside a container the published port decides exposure (127.0.0.1 on the host).
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
threads = 1
# Open connections per worker (slow ones included); beyond it, new ones wait in the queue.
worker_connections = 1000
# Covers the first model load, which happens before a worker accepts connections.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# No runtime control socket (gunicornc): by default every server of a user shares one path
# under $HOME, and the lab changes its servers through make, not through it.
control_socket_disable = True


def on_starting(server):
    """Start each server with empty metrics: stale files would resurrect dead workers."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for own in (_OWN_METRICS_DIR, _OWN_CACHE_DIR):
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)


def post_worker_init(worker):
    """A server started to replace a running one (labctl.supervise, on SIGHUP) is gated:
    each worker says whether it holds its model, then waits for the gate to open before
    it takes a connection, so that every worker switches on the same event."""
    gate = os.environ.get("SERVING_START_GATE")
    if not gate:
        return
    import time

    holder = getattr(worker.wsgi, "extensions", {}).get("model_holder")
    if holder is None or holder.current is not None:
        report = "ok"
    else:
        report = f"error: worker {os.getpid()} has no model ({holder.last_error or 'not loaded'})"
    marker = f"{gate}.ready.{os.getpid()}"
    with open(f"{marker}.tmp", "w") as f:
        f.write(report + "\n")
    os.replace(f"{marker}.tmp", marker)
    while not os.path.exists(gate) and worker.alive:  # a failed replacement stops it
        time.sleep(0.01)
        worker.notify()  # alive for the master while it waits
