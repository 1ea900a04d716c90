"""Wire limits that servers and clients share; no dependency beyond the standard library, so that a client-only
install (`emoomni[client]`) imports it."""

MAX_GRPC_MESSAGE = 80 * 1024 * 1024  # a clip up to the 64 MB limit plus framing
