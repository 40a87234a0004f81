"""The send path of campaigns: launch freezes recipients into the ledger (freeze.py),
workers claim and send batches and reclaim dead leases (send.py)."""
