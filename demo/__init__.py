"""Development tools, not the product: the demo data and the call simulator."""
