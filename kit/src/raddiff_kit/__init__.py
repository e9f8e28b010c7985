"""Shared plumbing for RadDiff's gRPC services and their clients.

Each service is a thin adapter around an engine; everything that is the same
for every service (server lifecycle, health, reflection, metrics, deadlines,
drain on SIGTERM, settings, image references, channels) lives here, once.
"""
