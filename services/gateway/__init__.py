"""Gateway: serves the public `Agent` API and streams each turn's events from the bus to the caller."""
