"""gunicorn settings of an app node (`gunicorn -c deploy/gunicorn.conf.py 'app:create_app()'`).

With PROMETHEUS_MULTIPROC_DIR set, each gunicorn worker writes its metrics there and /metrics sums them; a worker
that exits is marked dead so that its gauges leave the sum.
"""

import os

graceful_timeout = 10
timeout = 120  # the longest request: an export of the largest list


def post_worker_init(_worker: object) -> None:
    from app import freeze_startup_objects

    freeze_startup_objects()  # the app, loaded by this worker, out of the garbage collector's full collections


def child_exit(_server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
