"""Blueprint "api": the machines' endpoints, the usage API and the Stripe webhook (JSON errors,
token or signature authentication, no CSRF)."""
