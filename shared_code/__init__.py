"""Everything the functions call: settings, domain, services, adapters, projections."""
