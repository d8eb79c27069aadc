"""`rq` (the command line, e.g. ``python -m tests.rq_worker_counting_apps worker -w worker.AppWorker ...``)
that appends the process id of every process that builds the app to the file $APP_BUILDS_FILE, so a test
sees which processes built one: the worker, or each work horse."""

from __future__ import annotations

import os
import sys

import app.factory
from rq.cli import main

_create_app = app.factory.create_app


def create_app_and_record(*args, **kwargs):
    with open(os.environ["APP_BUILDS_FILE"], "a") as builds:
        builds.write(f"{os.getpid()}\n")
    return _create_app(*args, **kwargs)


app.factory.create_app = create_app_and_record  # before wsgi.py imports it
if __name__ == "__main__":
    sys.exit(main())
