"""The transactional outbox: stored events and the relay that delivers them."""
