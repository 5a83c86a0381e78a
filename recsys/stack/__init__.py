"""The local stack manager: starts, checks and stops Kafka, Redis, Prometheus and Alertmanager under `var/`."""

from recsys.stack.manager import ComponentStatus, Stack, StackError

__all__ = ["ComponentStatus", "Stack", "StackError"]
