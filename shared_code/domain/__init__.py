"""The domain: errors, events and the limits every layer shares."""
