"""The Flask shell, the only code that knows a request: the app factory, configuration, extensions,
access decorators, htmx helpers, request locale, charts and CSV, the CLI, RQ jobs and the cron schedule."""
