"""Calls: rating, holds for live calls and their charges, usage figures and the API keys the
telephony platform uses."""
