"""What support staff do with money and records: adjustments and refunds, reconciliation,
reports, failed payments and the stored Stripe events."""
