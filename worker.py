"""RQ workers that run every job inside the portal's app context.

    rq worker --url "$REDIS_URL" -w worker.AppWorker --with-scheduler invoices emails billing
"""

from rq.worker import SimpleWorker, Worker

from core.schema import db


class _AppContextMixin:
    flask_app = None  # the app whose context jobs run in; by default the one wsgi.py builds

    def perform_job(self, *args, **kwargs):
        with self._app().app_context():
            db.engine.dispose(close=False)  # a forked work horse must not reuse the parent's connections
            return super().perform_job(*args, **kwargs)

    def _app(self):
        if self.flask_app is None:
            from wsgi import app

            self.flask_app = app
        return self.flask_app


class AppWorker(_AppContextMixin, Worker):
    pass


class AppSimpleWorker(_AppContextMixin, SimpleWorker):
    """Runs jobs in the worker's own process (no fork): for tests and single-process setups."""
