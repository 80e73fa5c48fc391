"""HTTP, timer and change-feed functions, one blueprint per area. Thin: parse, authorize,
call a service in shared_code, shape the response."""
