"""Fault-injection suite: real services through the stack manager, faults injected, outcomes counted."""
