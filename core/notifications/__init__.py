"""What reaches a customer by itself: emails (recorded, rendered, sent once) and low-balance
warnings."""
