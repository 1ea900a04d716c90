"""Wire limits that servers and clients share; no dependency beyond the standard library, so that a client-only
install (`emoomni[client]`) imports it."""

MAX_GRPC_MESSAGE = 80 * 1024 * 1024  # what a client accepts: a clip up to the 64 MB limit plus framing
# What a server reads in one message. gRPC reads a message whole before any handler (the bearer-token check
# included) sees the call, so this bounds what an unauthenticated caller can make a server hold. A clip larger than
# this goes through the upload stream (Agent.ConverseUpload, in chunks), as the SDK always sends it.
MAX_REQUEST_MESSAGE = 8 * 1024 * 1024
