"""Finds the programs the local stack needs and, as root on Debian, installs the missing packages."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from recsys.stack.errors import MissingPrerequisiteError


@dataclass(frozen=True)
class Program:
    """An executable and the Debian package that provides it."""

    command: str
    package: str


JAVA = Program("java", "openjdk-17-jre-headless")
MAVEN = Program("mvn", "maven")
REDIS = Program("redis-server", "redis-server")
PROMETHEUS = Program("prometheus", "prometheus")
ALERTMANAGER = Program("prometheus-alertmanager", "prometheus-alertmanager")
PROMTOOL = Program("promtool", "prometheus")
AMTOOL = Program("amtool", "prometheus-alertmanager")
CHROMIUM = Program("chromium", "chromium")
"""Headless browser the dashboard test loads `recsys monitor report` in."""
OPENSSL = Program("openssl", "openssl")
"""Makes the throwaway CA and certificates of the Redis TLS test."""
ALL = (JAVA, MAVEN, REDIS, PROMETHEUS, ALERTMANAGER, PROMTOOL, AMTOOL, CHROMIUM, OPENSSL)
"""Everything `make test` needs on the machine."""


def _can_apt_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def require(programs: list[Program], auto_install: bool) -> dict[str, str]:
    """Paths of the programs; installs missing ones with apt-get when allowed, else raises one clear error."""
    missing = [p for p in programs if shutil.which(p.command) is None]
    if missing and auto_install and _can_apt_install():
        packages = sorted({p.package for p in missing})
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise MissingPrerequisiteError(
                f"apt-get install {' '.join(packages)} failed:\n{result.stderr[-2000:]}"
            )
        missing = [p for p in programs if shutil.which(p.command) is None]
    if missing:
        names = ", ".join(f"`{p.command}` (Debian package {p.package})" for p in missing)
        raise MissingPrerequisiteError(
            f"missing {names}; install with: sudo apt-get install {' '.join(p.package for p in missing)}"
        )
    return {p.command: shutil.which(p.command) or p.command for p in programs}
