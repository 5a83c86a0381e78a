"""The front door: the `recsys` CLI, platform-wide settings and the local stack manager."""
