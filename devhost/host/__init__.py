"""A small local Azure Functions host: indexes `function_app.py` as the Python worker does
and serves its HTTP, timer and Cosmos DB trigger functions."""
