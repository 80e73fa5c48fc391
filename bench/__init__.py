"""The Chorus benchmark harness: `python -m bench [--quick] [--only SCENARIO ...]` (or `make bench`).

It starts the local host (`python -m devhost run`) in a subprocess on a free port with its own state
directory, drives it over real HTTP from this process, measures each scenario's baselines (the same
SQL through psycopg, the same documents through the azure-cosmos SDK) in the same run, and writes
bench/results/latest.{json,md,png}. See bench/README.md.
"""
