"""The only code that changes a balance: the one write path, its invariants, the history pages
and the balance figures read from it."""
