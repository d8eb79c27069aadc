"""RQ workers that run every job inside the portal's app context.

    rq worker --url "$REDIS_URL" -w worker.AppWorker --with-scheduler --maintenance-interval 60 --worker-ttl 60 \
        invoices emails billing

(`make worker`.) A worker killed in the middle of a job (SIGKILL, a lost machine) stops sending the job's
heartbeat; a minute later the next idle worker's maintenance (every ``--maintenance-interval`` seconds, at
most ``--worker-ttl`` - 15 seconds apart while it waits for work) finds the job abandoned in RQ's
StartedJobRegistry and retries it, counting one of its retries (app.queue), so it runs again once.
"""

from rq.worker import SimpleWorker, Worker

from app.extensions import db
from app.jobs import prepare_for_jobs


class _AppContextMixin:
    flask_app = None  # the app whose context jobs run in; by default the one wsgi.py builds

    def bootstrap(self, *args, **kwargs):
        """Build the app once, in the worker, before it forks any work horse: each horse inherits it
        instead of building its own (seconds of CPU per job); likewise what every job's process does on its
        first job (compiled templates, locale data, WeasyPrint and its fonts)."""
        prepare_for_jobs(self._app())
        super().bootstrap(*args, **kwargs)

    def perform_job(self, *args, **kwargs):
        app = self._app()
        with app.app_context():
            if self.is_horse:
                _forget_inherited_connections(app)
            try:
                return super().perform_job(*args, **kwargs)
            finally:
                _deliver_sandbox_webhooks(app)

    def _app(self):
        if self.flask_app is None:
            from wsgi import app

            self.flask_app = app
        return self.flask_app


def _forget_inherited_connections(app) -> None:
    """A forked work horse holds copies of the worker's sockets: using them would interleave two
    processes' traffic on one connection, closing them would cut the worker's. The horse drops them
    unclosed and opens its own (SQLAlchemy's pattern for a pool copied by fork)."""
    db.engine.dispose(close=False)
    app.extensions.pop("redis", None)  # app.queue.redis_connection opens the horse's own client


def _deliver_sandbox_webhooks(app) -> None:
    """The Stripe sandbox (demo) delivers the webhooks a job raised from a background thread of this
    process; a work horse leaves through os._exit, so it waits for them here."""
    sandbox = app.extensions.get("stripe_sandbox")
    if sandbox is not None:
        sandbox.wait_for_deliveries(timeout=30)


class AppWorker(_AppContextMixin, Worker):
    pass


class AppSimpleWorker(_AppContextMixin, SimpleWorker):
    """Runs jobs in the worker's own process (no fork): for tests and single-process setups."""
