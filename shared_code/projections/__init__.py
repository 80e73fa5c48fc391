"""Projections: pure functions from a stored event to the Cosmos DB documents it implies."""
