"""Documents that never change once issued: invoices, credit notes, monthly statements, and
the VAT split they use."""
