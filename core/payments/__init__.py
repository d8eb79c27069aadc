"""Money coming in: the Stripe gateway (the only importer of `stripe`), top-ups, bonuses, saved
payment methods, webhook intake and automatic top-ups."""
