"""The HTTP contract's bodies, one module per route group (see common.py)."""
