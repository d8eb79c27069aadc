"""The billing domain: plain values and a database session in, results or domain errors out.
No request, no commit: the entry points in app/, portal/, staff/ and api/ own both."""
