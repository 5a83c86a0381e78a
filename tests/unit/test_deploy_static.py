"""Static checks of the container setup (Dockerfile, docker-compose.yml, Prometheus, Alertmanager, Grafana) against the code.

There is no Docker engine on the development machines, so nothing here builds or starts a
container. Instead every file is parsed and cross-checked with what the code expects: service
names, ports, env names (introspected from the pydantic-settings classes), `recsys` commands
(walked in the real typer app), topic partitions, metric names. Prometheus and Alertmanager
files go through their own validators (`promtool`, `amtool`, from the Debian packages that
`make test` installs); a missing tool fails the test, it never skips it.

Names the code does not provide yet are listed in PENDING_ENV / PENDING_COMMANDS with the issue
that brings them; a test asserts they are still missing, so the entry must be removed (and the
real check then runs) as soon as that issue lands.
"""

from __future__ import annotations

import ast
import base64
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTMANAGER_FILE = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = DEPLOY / "grafana"

# --- facts the files must agree with -------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """Where a service listens inside the compose network, and the 127.0.0.1 port it publishes."""

    listen: int
    published: int | None


PORTS: dict[str, Port] = {
    "kafka": Port(9092, 9092),
    "redis": Port(6379, 6379),
    "api": Port(8082, 8082),
    "sim-api": Port(8080, 8080),
    # Scraped in-network only: a fixed host port would forbid `--scale ingest=N`.
    "ingest": Port(9101, None),
    "monitor": Port(9102, None),
    "prometheus": Port(9090, 9090),
    "alertmanager": Port(9093, 9093),
    "grafana": Port(3000, 3000),
}
ONE_SHOT = {"kafka-init", "sim-world"}
"""Services that run to completion; others wait for them with service_completed_successfully."""
PORTLESS = {"kafka-init", "sim-world", "sim-traffic"}
SERVICES = set(PORTS) | ONE_SHOT | PORTLESS
BUILT_FROM_DOCKERFILE = {"kafka-init", "sim-world", "api", "ingest", "monitor", "sim-api", "sim-traffic"}
STATELESS = {"kafka-init"}
"""Built services that write no local state (everything else keeps RECSYS_VAR_DIR on a volume)."""

PINNED_IMAGES = {
    "redis": "redis:7.4-alpine",
    "prometheus": "prom/prometheus:",
    "alertmanager": "prom/alertmanager:",
    "grafana": "grafana/grafana:",
}
"""Image (prefix) per service; Kafka's tag is checked against the local stack's Kafka version."""

SERVICE_COMMANDS = {
    "sim-world": "simulate world",
    "api": "serve",
    "ingest": "ingest",
    "monitor": "monitor stream",
    "sim-api": "simulate api",
    "sim-traffic": "simulate traffic",
}
"""The `recsys` subcommand each Python service runs."""

PENDING_COMMANDS: dict[str, str] = {}
"""`recsys` commands compose runs that the CLI does not have yet, and the issue that adds them."""

PENDING_ENV: dict[str, str] = {}
"""RECSYS_* variables compose sets that no settings class reads yet, and the issue that adds them."""

SETTINGS_PACKAGES = (
    "events",
    "recsys",
    "simulator",
    "ingestion",
    "ranking",
    "serving",
    "monitoring",
    "textmodel",
)

ENDPOINT_ENV = {
    "RECSYS_KAFKA_BOOTSTRAP_SERVERS": "kafka",
    "RECSYS_REDIS_URL": "redis",
    "RECSYS_SIM_API_URL": "sim-api",
    "RECSYS_SERVING_URL": "api",
}
"""Variables that name another service: host and port must be that service's, and it a dependency."""
EXTERNAL_FLAG = {
    "RECSYS_KAFKA_BOOTSTRAP_SERVERS": "RECSYS_KAFKA_EXTERNAL",
    "RECSYS_REDIS_URL": "RECSYS_REDIS_EXTERNAL",
}
"""In compose the broker and Redis are compose's: the stack manager must never start its own."""
GATE_FOR = {"kafka": "kafka-init"}
"""Kafka clients wait for the topics, not just the broker."""
PORT_SETTINGS = {
    "RECSYS_INGEST_METRICS_PORT": "ingest",
    "RECSYS_MONITOR_METRICS_PORT": "monitor",
    "RECSYS_SIM_API_PORT": "sim-api",
}
"""Settings whose default port compose relies on without setting it."""

METRIC_CONTRACT = {
    "recsys_requests_total",
    "recsys_request_latency_seconds_bucket",
    "recsys_fallback_total",
    "recsys_model_load_failures_total",
}
"""Metric names the availability rules use; serving must export them."""
METRIC_MODULES = ("serving.metrics", "ingestion.metrics", "monitoring.metrics")
"""Where every metric a rule or a dashboard panel names must be defined."""
SLA_SECONDS = 0.6
TOPICS = {
    "movielog": 4,
    "movielog.dlq": None,
    "recsys.provenance": None,
    "recsys.alerts": None,
    "recsys.experiments": None,
}
"""Platform topics (partitions where the issue fixes them); kafka-init creates them via events.kafka."""
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|CREDENTIAL|API_KEY", re.IGNORECASE)
REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")

# --- loading --------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def resolve(value: object) -> str:
    """A compose value as a container sees it: `${X:-d}` gives d, a required `${X:?msg}` a placeholder."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":  # compose's escape for a literal $
            return "$"
        op = m.group("op") or ""
        if "-" in op:
            return m.group("arg")
        if "?" in op:
            return f"placeholder-for-{m.group('name')}"
        raise AssertionError(f"{m.group(0)}: give a default (:-) or make it required (:?)")

    return _INTERPOLATION.sub(sub, str(value))


def environment(service: str) -> dict[str, str | None]:
    """The service's variables; None means passed through from the shell when set there."""
    env = services()[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {str(k): None if v is None else str(v) for k, v in env.items()}


def depends_on(service: str) -> dict[str, str]:
    deps = services()[service].get("depends_on") or {}
    assert isinstance(deps, dict), f"{service}: depends_on must use the long form with a condition"
    return {name: spec.get("condition", "") for name, spec in deps.items()}


def healthcheck(service: str) -> dict[str, Any]:
    return services()[service].get("healthcheck") or {}


def healthcheck_enabled(service: str) -> bool:
    hc = healthcheck(service)
    return bool(hc.get("test")) and not hc.get("disable", False)


def command(service: str) -> list[str]:
    cmd = services()[service].get("command")
    assert isinstance(cmd, list), f"{service}: use the exec (list) form so argv is exact and signals reach it"
    return [str(a) for a in cmd]


def recsys_argv(service: str) -> list[str]:
    """The `recsys ...` argv a service runs, also when a one-shot wraps it in `sh -c "recsys ... || ..."`."""
    argv = command(service)
    if argv[:2] == ["sh", "-c"]:
        words = shlex.split(resolve(argv[2]))
        stops = [i for i, w in enumerate(words) if w in ("||", "&&", ";", "|")]
        argv = words[: stops[0]] if stops else words
    return argv


def bind_mounts(service: str) -> dict[str, Path]:
    """Container path -> repository path of each `./...` bind mount."""
    out: dict[str, Path] = {}
    for vol in services()[service].get("volumes", []):
        source, target = str(vol).split(":")[:2]
        if source.startswith("."):
            out[target] = (ROOT / source).resolve()
    return out


def named_mounts(service: str) -> dict[str, str]:
    """Container path -> named volume."""
    out: dict[str, str] = {}
    for vol in services()[service].get("volumes", []):
        source, target = str(vol).split(":")[:2]
        if not source.startswith((".", "/")):
            out[target] = source
    return out


def host_path(service: str, container_path: str) -> Path | None:
    """The repository file behind a container path of `service`, through its bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in bind_mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    return None


def endpoint(value: str) -> tuple[str, int]:
    """(host, port) of a URL or a host:port pair."""
    parts = urlsplit(value if "://" in value else f"tcp://{value}")
    assert parts.hostname and parts.port, f"{value!r}: expected an explicit host and port"
    return parts.hostname, parts.port


@contextmanager
def clean_environment(env: Mapping[str, str] | None = None) -> Iterator[None]:
    """os.environ without the caller's RECSYS_* variables, plus `env`, restored afterwards."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("RECSYS_")]:
            del os.environ[key]
        os.environ.update(env or {})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found: install the Debian package {package} (`make test` does it)")
    return path


def run_tool(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"


# --- settings and CLI introspection ----------------------------------------------------------


def _settings_modules() -> list[str]:
    """Modules that define a settings class, found by reading source: importing every module of
    every package would start feast, mlflow and friends for nothing."""
    found: list[str] = []
    for package in SETTINGS_PACKAGES:
        folder = ROOT / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and b.id.endswith("Settings"))
                    or (isinstance(b, ast.Attribute) and b.attr.endswith("Settings"))
                    for b in node.bases
                ):
                    module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                    found.append(module.removesuffix(".__init__"))
                    break
    return found


@cache
def settings_classes() -> tuple[type[BaseSettings], ...]:
    for module in _settings_modules():
        importlib.import_module(module)
    seen: list[type[BaseSettings]] = []
    stack: list[type[BaseSettings]] = list(BaseSettings.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in SETTINGS_PACKAGES and cls not in seen:
            seen.append(cls)
    return tuple(seen)


def field_env_names(cls: type[BaseSettings]) -> dict[str, set[str]]:
    """Field name -> the env variables that set it (pydantic-settings rules, case-insensitive)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    out: dict[str, set[str]] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names = {alias}
        elif isinstance(alias, AliasChoices):
            names = {c for c in alias.choices if isinstance(c, str)}
        elif info.alias:
            names = {info.alias}
        else:
            names = {prefix + name}
        out[name] = {n.upper() for n in names}
    return out


@cache
def known_env() -> frozenset[str]:
    return frozenset(
        n for cls in settings_classes() for names in field_env_names(cls).values() for n in names
    )


def _load_cli() -> Any | None:
    """The `recsys` typer app, or None while recsys.cli does not exist; a broken one raises."""
    try:
        module = importlib.import_module("recsys.cli")
    except ModuleNotFoundError as exc:
        if exc.name == "recsys.cli":
            return None
        raise
    return module.app


@cache
def cli_commands() -> dict[str, Any]:
    """'sub command' -> leaf command object of the real CLI (typer vendors click: duck-typed walk)."""
    app = _load_cli()
    if app is None:
        return {}
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        # Groups are recorded too: one with invoke_without_command runs by itself (`recsys ingest`).
        out[" ".join(path)] = cmd
        if hasattr(cmd, "list_commands"):
            ctx = cmd.make_context("recsys", [], resilient_parsing=True)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def split_recsys_command(argv: list[str]) -> tuple[str, list[str]]:
    """('simulate api', ['--host', ...]) from ['recsys', 'simulate', 'api', '--host', ...]."""
    assert argv[0] == "recsys", argv
    words = 1
    while words < len(argv) and not argv[words].startswith("-"):
        words += 1
    return " ".join(argv[1:words]), argv[words:]


# --- Dockerfile parsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@cache
def dockerfile_stages() -> tuple[tuple[str, tuple[Instruction, ...]], ...]:
    """(stage header, instructions) per FROM. Comment lines are dropped even inside a
    continuation, as Docker does; backslash continuations are joined."""
    stages: list[tuple[str, list[Instruction]]] = [("", [])]
    buffer = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        keyword, _, args = (buffer + stripped).partition(" ")
        buffer = ""
        if keyword.upper() == "FROM":
            stages.append((args.strip(), []))
        else:
            stages[-1][1].append(Instruction(keyword.upper(), args.strip()))
    return tuple((header, tuple(instrs)) for header, instrs in stages)


def final_stage() -> tuple[str, tuple[Instruction, ...]]:
    return dockerfile_stages()[-1]


def stage_names() -> list[str]:
    return [h.split()[-1] for h, _ in dockerfile_stages()[1:] if " AS " in h.upper()]


def env_instructions(instrs: tuple[Instruction, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ins in instrs:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                out[key] = value
    return out


# --- .dockerignore matching --------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(relpath: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder covers its content."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _glob_regex(line.lstrip("!").strip("/"))))
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


# === docker-compose.yml: shape, images, builds ===============================================


def test_compose_declares_exactly_the_platform_services() -> None:
    assert set(services()) == SERVICES
    # `version` is obsolete in the compose spec (a warning on every command); `name` fixes volume names.
    assert "version" not in compose()
    assert compose().get("name") == "recsys"


def test_platform_containers_run_hardened_on_a_read_only_root() -> None:
    # Every service built from the platform image: read-only root, /tmp as tmpfs (HOME and caches
    # point there in the image), no capabilities, no privilege escalation, a non-root user.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    assert "HOME=/tmp" in dockerfile and "MPLCONFIGDIR=/tmp/" in dockerfile
    built = {name: svc for name, svc in services().items() if "build" in svc}
    assert built, "no service is built from the platform image"
    for name, svc in built.items():
        assert svc.get("read_only") is True, name
        assert "/tmp" in svc.get("tmpfs", []), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        image = resolve(svc.get("image", ""))
        assert image or "build" in svc, f"{name}: needs an image or a build"
        if not image:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: pin a version, not latest"
    for name, prefix in PINNED_IMAGES.items():
        assert services()[name]["image"].startswith(prefix), (name, services()[name]["image"])


def test_kafka_image_matches_the_local_stack_version() -> None:
    settings = importlib.import_module("recsys.settings")
    with clean_environment():
        version = settings.StackSettings(_env_file=None).kafka_version
    # The same broker release for `recsys stack up` and compose, so behaviour does not depend on the stack.
    assert services()["kafka"]["image"] == f"apache/kafka:{version}"


def test_python_services_build_the_final_stage_of_deploy_dockerfile() -> None:
    built = {name for name, svc in services().items() if "build" in svc}
    assert built == BUILT_FROM_DOCKERFILE
    images = set()
    for name in built:
        build = services()[name]["build"]
        context = (ROOT / build["context"]).resolve()
        assert context == ROOT, f"{name}: the build context must be the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        # The stage compose builds is the one `docker build` without --target gives.
        assert build["target"] == stage_names()[-1]
        images.add(resolve(services()[name]["image"]))
    assert len(images) == 1, f"one image for every Python service, built once: {images}"


def test_no_fixed_container_names() -> None:
    # container_name breaks `--scale` and collides between checkouts.
    assert not [n for n, s in services().items() if "container_name" in s]


# === ports ===================================================================================


def _published(service: str) -> list[tuple[str, int, int]]:
    out = []
    for spec in services()[service].get("ports", []):
        parts = str(spec).split(":")
        assert len(parts) == 3, f"{service}: publish as 127.0.0.1:HOST:CONTAINER, got {spec!r}"
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def test_published_ports_match_the_platform_ports() -> None:
    for name in SERVICES:
        published = _published(name)
        expected = PORTS.get(name)
        if expected is None or expected.published is None:
            assert not published, f"{name}: must not publish ports"
            continue
        assert len(published) == 1, f"{name}: {published}"
        ip, host_port, container_port = published[0]
        # Kafka, Redis and the metadata API have no authentication: reachable from this host only.
        assert ip == "127.0.0.1", f"{name}: bind published ports to 127.0.0.1"
        assert host_port == expected.published, name
        if name != "kafka":  # Kafka publishes its host listener: see the Kafka test.
            assert container_port == expected.listen, name


def test_metrics_ports_are_exposed_in_network() -> None:
    for name in ("ingest", "monitor"):
        assert [str(p) for p in services()[name].get("expose", [])] == [str(PORTS[name].listen)], name


def test_servers_bind_all_interfaces_on_their_port() -> None:
    # 127.0.0.1 inside a container is unreachable from the other containers.
    for name in ("api", "sim-api"):
        argv = command(name)
        assert argv[argv.index("--host") + 1] == "0.0.0.0", name
        assert int(argv[argv.index("--port") + 1]) == PORTS[name].listen, name


# === Kafka ====================================================================================


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_kafka_runs_one_combined_kraft_node() -> None:
    env = {k: str(v) for k, v in environment("kafka").items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert endpoint(voter) == ("kafka", listeners[controller][1])
    assert controller not in advertised, "a controller listener is never advertised to clients"
    # Containers use the internal listener under the service's own name and port.
    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[internal] == ("kafka", PORTS["kafka"].listen)
    # The one published port is a listener advertised as the host's 127.0.0.1 address.
    [(_, host_port, container_port)] = _published("kafka")
    by_port = {port: name for name, (_, port) in listeners.items()}
    assert advertised[by_port[container_port]] == ("127.0.0.1", host_port)
    assert by_port[container_port] not in (controller, internal)
    # A single node cannot replicate: every replication factor and min ISR must be 1.
    for key, value in env.items():
        if key.endswith(("_REPLICATION_FACTOR", "_MIN_ISR")):
            assert value == "1", key
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID: base64 of 16 bytes"
    assert env["KAFKA_LOG_DIRS"] in named_mounts("kafka"), "broker data must live on a named volume"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_kafka_healthcheck_probes_the_internal_listener() -> None:
    test = " ".join(healthcheck("kafka")["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
    assert f"--bootstrap-server localhost:{PORTS['kafka'].listen}" in test


def test_kafka_init_creates_the_platform_topics_from_the_code() -> None:
    argv = command("kafka-init")
    assert argv[:2] == ["python", "-c"]
    tree = ast.parse(argv[2])
    imported = [(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert ("events.kafka", "ensure_topics") in imported
    for module, name in imported:
        assert hasattr(importlib.import_module(str(module)), name), f"{module}.{name}"
    kafka = importlib.import_module("events.kafka")
    settings = importlib.import_module("events.settings")
    with clean_environment():
        partitions = kafka.default_topic_partitions(settings.KafkaSettings(_env_file=None))
    assert set(partitions) == set(TOPICS)
    for topic, expected in TOPICS.items():
        if expected is not None:
            assert partitions[topic] == expected, topic


def test_sim_world_is_idempotent_on_the_simulators_own_marker() -> None:
    # `simulate world` exits 1 when a world exists; the fallback turns that into success, but only
    # when the world's marker file is really there, so a failed first generation still fails.
    script = resolve(command("sim-world")[2])
    fallback = script.split("||", 1)[1].strip()
    marker = PurePosixPath(shlex.split(fallback.replace("${RECSYS_VAR_DIR}", "/data/var"))[2])
    assert shlex.split(fallback)[:2] == ["test", "-f"]
    sim = importlib.import_module("simulator.settings")
    with clean_environment({"RECSYS_VAR_DIR": "/data/var"}):
        sim_dir = PurePosixPath(sim.SimSettings(_env_file=None).sim_dir)
    assert marker == sim_dir / "world.json"
    sources = " ".join(p.read_text() for p in (ROOT / "simulator").rglob("*.py"))
    assert f'"{marker.name}"' in sources, f"the simulator no longer writes {marker.name}"
    assert "RECSYS_VAR_DIR" in environment("sim-world")


# === environment ==============================================================================


def _recsys_env(service: str) -> dict[str, str | None]:
    return {k: v for k, v in environment(service).items() if k.startswith("RECSYS_")}


def test_every_recsys_variable_is_a_settings_field_or_pending() -> None:
    used = {k for name in services() for k in _recsys_env(name)}
    used |= {k for k in env_instructions(final_stage()[1]) if k.startswith("RECSYS_")}
    unknown = sorted(used - known_env() - set(PENDING_ENV))
    assert not unknown, f"no settings class reads {unknown}: typo, or add to PENDING_ENV with its issue"
    stale = sorted(set(PENDING_ENV) - used)
    assert not stale, f"PENDING_ENV entries compose no longer uses: {stale}"


def test_pending_env_is_still_pending() -> None:
    landed = {k: v for k, v in PENDING_ENV.items() if k in known_env()}
    assert not landed, f"now read by a settings class ({landed}): remove them from PENDING_ENV"


@pytest.mark.parametrize("service", sorted(BUILT_FROM_DOCKERFILE))
def test_recsys_values_validate_against_the_settings(service: str) -> None:
    env = {k: resolve(v) for k, v in _recsys_env(service).items() if k not in PENDING_ENV and v is not None}
    with clean_environment(env):
        for cls in settings_classes():
            fields = field_env_names(cls)
            try:
                cls(_env_file=None)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = str(err["loc"][0]) if err["loc"] else ""
                    ours = loc.upper() in env or bool(fields.get(loc, set()) & set(env))
                    assert not ours, f"{service}: {cls.__name__} rejects {loc}: {err['msg']}"


@pytest.mark.parametrize("service", sorted(BUILT_FROM_DOCKERFILE))
def test_endpoints_point_at_services_they_wait_for(service: str) -> None:
    env = environment(service)
    deps = depends_on(service)
    for var, target in ENDPOINT_ENV.items():
        if var not in env:
            continue
        assert env[var] is not None, f"{service}: {var} must name the compose service, not pass through"
        assert endpoint(resolve(env[var])) == (target, PORTS[target].listen), f"{service}: {var}"
        gate = GATE_FOR.get(target, target)
        if gate == service:  # the gate itself waits for the service behind it
            gate = target
        expected = "service_completed_successfully" if gate in ONE_SHOT else "service_healthy"
        assert deps.get(gate) == expected, f"{service} uses {target} ({var}): depends_on {gate}: {expected}"
        if var in EXTERNAL_FLAG:
            assert env.get(EXTERNAL_FLAG[var]) == "true", f"{service}: set {EXTERNAL_FLAG[var]}=true"


@pytest.mark.parametrize("service", sorted(BUILT_FROM_DOCKERFILE))
def test_local_state_lives_on_a_named_volume(service: str) -> None:
    var_dir = PurePosixPath(
        environment(service).get("RECSYS_VAR_DIR") or env_instructions(final_stage()[1])["RECSYS_VAR_DIR"]
    )
    mounts = [PurePosixPath(t) for t in named_mounts(service)]
    if service in STATELESS:
        return
    assert any(m == var_dir or m in var_dir.parents for m in mounts), f"{service}: {var_dir} not on a volume"


def test_port_defaults_match_the_ports_compose_relies_on() -> None:
    for cls in settings_classes():
        for field, names in field_env_names(cls).items():
            for name in names & set(PORT_SETTINGS):
                service = PORT_SETTINGS[name]
                if name in environment(service):
                    continue
                assert cls.model_fields[field].default == PORTS[service].listen, f"{cls.__name__}.{field}"


def test_secrets_come_from_the_environment() -> None:
    for name in services():
        for key, value in environment(name).items():
            if key.endswith("_FILE") and SECRET_NAME.search(key):
                # A file of a declared compose secret (which the loop below holds to an env variable).
                secret = PurePosixPath(value or "")
                assert secret.parent == PurePosixPath("/run/secrets"), (
                    f"{name}: {key} must be a compose secret"
                )
                assert secret.name in (compose().get("secrets") or {}), f"{name}: {key}"
                assert secret.name in services()[name].get("secrets", []), f"{name}: {key} is not mounted"
            elif SECRET_NAME.search(key):
                # No default: compose refuses to start rather than run with a known credential.
                assert REQUIRED_VAR.match(value or ""), f"{name}: {key} must be ${{VAR:?message}}"
    for name, spec in (compose().get("secrets") or {}).items():
        assert set(spec) == {"environment"}, f"secret {name}: take it from an env variable"


def test_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(compose().get("volumes") or {})
    used: set[str] = set()
    for name in services():
        used |= set(named_mounts(name).values())
        for source in bind_mounts(name).values():
            assert source.exists() and ROOT in source.parents, f"{name}: {source}"
    assert used == declared


# === commands ===================================================================================


def test_cli_entry_point_is_the_typer_app() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["recsys"] == "recsys.cli:app"
    app = _load_cli()
    assert isinstance(app, typer.Typer), "recsys.cli must define `app`, the typer app compose commands run"


def test_service_commands_are_the_expected_ones() -> None:
    for name, sub in SERVICE_COMMANDS.items():
        assert split_recsys_command(recsys_argv(name))[0] == sub, name


def test_pending_commands_are_still_pending() -> None:
    landed = {c: issue for c, issue in PENDING_COMMANDS.items() if c in cli_commands()}
    assert not landed, (
        f"`recsys` now has {landed}: remove them from PENDING_COMMANDS so their options get checked"
    )
    assert set(PENDING_COMMANDS) <= set(SERVICE_COMMANDS.values()), "stale PENDING_COMMANDS entry"


@pytest.mark.parametrize("service", sorted(SERVICE_COMMANDS))
def test_service_command_parses_with_the_real_cli(service: str) -> None:
    path, args = split_recsys_command(recsys_argv(service))
    if path in PENDING_COMMANDS:
        return  # test_pending_commands_are_still_pending fails once it lands.
    commands = cli_commands()
    assert commands, "recsys.cli is not importable yet"
    assert path in commands, f"{service}: `recsys {path}` is not a command ({sorted(commands)})"
    if hasattr(commands[path], "list_commands"):
        assert getattr(commands[path], "invoke_without_command", False), f"`recsys {path}` needs a subcommand"
    try:
        # Parses and converts every option like a real run would, without invoking the command.
        commands[path].make_context(f"recsys {path}", list(args))
    except Exception as exc:  # typer vendors click: its exception classes are private.
        pytest.fail(f"{service}: `recsys {path} {' '.join(args)}` does not parse: {exc!r}")


# === health and start order =====================================================================


def _python_snippets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-c" and "python" in " ".join(argv[:i])]


def test_long_running_services_have_healthchecks() -> None:
    for name in SERVICES - ONE_SHOT:
        hc = healthcheck(name)
        assert healthcheck_enabled(name), f"{name}: needs a healthcheck"
        assert hc["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in hc, f"{name}: healthcheck {key}"
        assert services()[name].get("restart") == "unless-stopped", f"{name}: restart policy"
    for name in ONE_SHOT:
        assert healthcheck(name).get("disable") is True, f"{name}: one-shot, disable the image's healthcheck"
        assert services()[name].get("restart") == "no", f"{name}: a one-shot must not restart"


def test_healthchecks_probe_the_service_itself() -> None:
    for name in SERVICES - ONE_SHOT:
        test = healthcheck(name)["test"]
        text = " ".join(test[1:])
        for snippet in _python_snippets(test[1:]):
            compile(snippet, f"<{name} healthcheck>", "exec")
            for var in re.findall(r"os\.environ\['(\w+)'\]", snippet):
                assert var in environment(name), f"{name}: healthcheck reads {var}"
        ports = {int(p) for p in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", text)}
        if name == "redis":
            assert "redis-cli ping" in text
        elif name == "sim-traffic":
            # No port of its own: healthy when it can do its job, i.e. reach the API it drives.
            assert "RECSYS_SERVING_URL" in text
        else:
            assert ports == {PORTS[name].listen}, f"{name}: healthcheck probes {ports}"


def test_depends_on_waits_for_health_or_completion() -> None:
    for name in services():
        for target, condition in depends_on(name).items():
            assert target in services(), f"{name} depends on unknown {target}"
            if target in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
                assert healthcheck_enabled(target), f"{name} waits for {target}, which has no healthcheck"
    assert depends_on("kafka-init") == {"kafka": "service_healthy"}
    assert depends_on("grafana") == {"prometheus": "service_healthy"}


def test_services_wait_for_one_shots_that_fill_their_volumes() -> None:
    # A one-shot that writes a volume (sim-world's generated world) must finish before the
    # services that read that volume start.
    for shot in ONE_SHOT:
        for volume in named_mounts(shot).values():
            for name in SERVICES - ONE_SHOT:
                if volume in named_mounts(name).values():
                    assert depends_on(name).get(shot) == "service_completed_successfully", (
                        f"{name} reads volume {volume} that {shot} fills: depends_on {shot}"
                    )


def test_start_order_has_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        assert state.get(node) != "open", f"depends_on cycle: {' -> '.join([*trail, node])}"
        if state.get(node) == "done":
            return
        state[node] = "open"
        for dep in depends_on(node):
            visit(dep, [*trail, node])
        state[node] = "done"

    for name in services():
        visit(name, [])


# === Dockerfile =================================================================================


def test_dockerfile_is_multi_stage_and_runs_as_non_root() -> None:
    stages = dockerfile_stages()[1:]
    assert len(stages) >= 2
    _, instrs = final_stage()
    # Same base for builder and runtime: the venv's interpreter links point into it.
    assert len({h.split()[0] for h, _ in stages}) == 1, [h for h, _ in stages]
    users = [i.args for i in instrs if i.keyword == "USER"]
    assert users, "final stage needs a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "final stage runs as root"
    assert user.isdigit() and int(user) >= 1000, "use a numeric uid so runAsNonRoot can verify it"
    assert any(i.keyword == "COPY" and "--from=" in i.args for i in instrs), "runtime copies from the builder"
    assert not any("gcc" in i.args for i in instrs if i.keyword == "RUN"), "no compiler in the runtime"


def test_dockerfile_healthcheck_exposes_and_default_command() -> None:
    _, instrs = final_stage()
    [health] = [i.args for i in instrs if i.keyword == "HEALTHCHECK"]
    argv = json.loads(health.split(" CMD ", 1)[1])
    [snippet] = _python_snippets(argv)
    compile(snippet, "<Dockerfile HEALTHCHECK>", "exec")
    assert f"http://127.0.0.1:{PORTS['api'].listen}/healthz" in snippet
    exposed = {int(p) for i in instrs if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed >= {PORTS["api"].listen, PORTS["sim-api"].listen, PORTS["ingest"].listen}
    [cmd] = [json.loads(i.args) for i in instrs if i.keyword == "CMD"]
    assert cmd == command("api"), "the image's default command is the API, as compose runs it"
    [entrypoint] = [json.loads(i.args) for i in instrs if i.keyword == "ENTRYPOINT"]
    assert entrypoint[0].endswith("tini"), "an init process as PID 1 forwards SIGTERM"


def test_dockerfile_runtime_environment() -> None:
    env = env_instructions(final_stage()[1])
    for key, value in {
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "WHYLOGS_NO_ANALYTICS": "1",
        "PYTHONUNBUFFERED": "1",
        "RECSYS_VAR_DIR": "/data/var",
    }.items():
        assert env.get(key) == value, key


def test_dockerfile_has_no_secrets() -> None:
    for _, instrs in dockerfile_stages():
        for ins in instrs:
            if ins.keyword in ("ENV", "ARG"):
                names = [p.partition("=")[0] for p in shlex.split(ins.args)]
                assert not [n for n in names if SECRET_NAME.search(n)], f"{ins.keyword} {ins.args}"


def test_dockerfile_installs_from_the_lock_with_the_makefile_uv() -> None:
    builder = dockerfile_stages()[1][1]
    runs = " ".join(i.args for i in builder if i.keyword == "RUN")
    args = {k: v for i in builder if i.keyword == "ARG" for k, _, v in [i.args.partition("=")]}
    makefile = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert makefile and args.get("UV_VERSION") == makefile.group(1)
    assert 'pip install "uv==${UV_VERSION}"' in runs
    assert re.search(r"uv pip install [^&]*-c requirements\.lock", runs), "dependencies pinned by the lock"


def test_dockerfile_copies_only_existing_allowed_files() -> None:
    for _, instrs in dockerfile_stages():
        for ins in instrs:
            if ins.keyword != "COPY" or "--from=" in ins.args:
                continue
            sources = shlex.split(ins.args)[:-1]
            for source in sources:
                if source == ".":
                    continue
                assert (ROOT / source).exists(), f"COPY {source}: missing"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_sends_the_packages_and_nothing_private() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = ["pyproject.toml", "requirements.lock", pyproject["project"]["readme"]]
    for package in packages:
        needed += [
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / package).rglob("*.py")
            if "__pycache__" not in p.parts
        ]
        for data in pyproject["tool"]["setuptools"].get("package-data", {}).get(package, []):
            needed.append(f"{package}/{data}")
    missing = [p for p in needed if dockerignored(p)]
    assert not missing, f".dockerignore excludes what the build needs: {missing}"
    private = [
        ".env",
        ".git/config",
        ".venv/bin/python",
        "var/offline/part-0.parquet",
        "tests/unit/test_codec.py",
        "build/lib/events/codec.so",
        "events/codec.cpython-311-x86_64-linux-gnu.so",
        "events/__pycache__/codec.cpython-311.pyc",
        "docker-compose.yml",
    ]
    leaked = [p for p in private if not dockerignored(p)]
    assert not leaked, f".dockerignore lets these into the build context: {leaked}"


# === Prometheus ===================================================================================


@cache
def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())  # type: ignore[no-any-return]


def _rule_files() -> list[Path]:
    return sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))


def test_promtool_accepts_config_and_rules() -> None:
    promtool = require_tool("promtool", "prometheus")
    rules = _rule_files()
    assert rules
    run_tool([promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    run_tool([promtool, "check", "rules", *map(str, rules)])


def test_alert_rules_pass_their_unit_tests() -> None:
    promtool = require_tool("promtool", "prometheus")
    tests = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests
    run_tool([promtool, "test", "rules", *map(str, tests)])


def test_prometheus_mounts_and_targets_match_compose() -> None:
    argv = command("prometheus")
    [config] = [a.split("=", 1)[1] for a in argv if a.startswith("--config.file=")]
    assert host_path("prometheus", config) == PROMETHEUS_DIR / "prometheus.yml"
    for pattern in prometheus_config()["rule_files"]:
        assert sorted(PROMETHEUS_DIR.glob(pattern)) == _rule_files(), pattern
    targets: dict[str, set[tuple[str, int]]] = {}
    for job in prometheus_config()["scrape_configs"]:
        found = {endpoint(t) for sc in job.get("static_configs", []) for t in sc["targets"]}
        found |= {(n, sd["port"]) for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
        targets[job["job_name"]] = found
    for job, found in targets.items():
        for host, port in found:
            service = "prometheus" if host == "localhost" else host
            assert port == PORTS[service].listen, f"job {job}: {host}:{port}"
    assert targets["recsys-api"] == {("api", PORTS["api"].listen)}
    assert targets["recsys-ingest"] == {("ingest", PORTS["ingest"].listen)}
    assert targets["recsys-monitor"] == {("monitor", PORTS["monitor"].listen)}
    alertmanagers = {
        endpoint(t)
        for am in prometheus_config()["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    }
    assert alertmanagers == {("alertmanager", PORTS["alertmanager"].listen)}


def test_job_names_and_rules_are_shared_with_the_local_stack() -> None:
    monitoring = importlib.import_module("recsys.stack.monitoring")
    # The local stack loads these same rule files; they must only name jobs both setups have.
    assert Path(monitoring.RULES_DIR).resolve() == (PROMETHEUS_DIR / "rules").resolve()
    compose_jobs = {job["job_name"] for job in prometheus_config()["scrape_configs"]}
    local_jobs = set(monitoring.SCRAPE_JOBS) | {"prometheus"}
    assert local_jobs <= compose_jobs
    for path in _rule_files():
        for job in re.findall(r'job\s*=~?\s*"([^"]+)"', path.read_text()):
            assert job in local_jobs, f"{path.name}: job {job!r} exists only in one stack"


def _rules() -> dict[str, dict[str, Any]]:
    out = {}
    for path in _rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out[rule.get("alert") or rule["record"]] = rule
    return out


@cache
def exported_metric_names() -> frozenset[str]:
    """Series names the code exports: prometheus_client objects (with their suffixes) and the
    exporter's gauges, which monitoring/metrics.py names as `recsys_*` string constants."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum"),
    }
    names: set[str] = set()
    for module in map(importlib.import_module, METRIC_MODULES):
        for value in vars(module).values():
            if isinstance(value, str) and re.fullmatch(r"recsys_[a-z_]+", value):
                names.add(value)
            elif hasattr(value, "_name") and hasattr(value, "_type"):
                names |= {f"{value._name}{s}" for s in suffixes.get(value._type, ("",))}
    return frozenset(names)


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\brecsys_[a-z0-9_]+", expr))


def test_rules_use_exported_metrics_and_the_sla() -> None:
    rules = _rules()
    used = {m for r in rules.values() for m in _metric_names(r["expr"])}
    assert used >= METRIC_CONTRACT, f"availability rules lost {METRIC_CONTRACT - used}"
    unknown = used - exported_metric_names()
    assert not unknown, f"rules name metrics no module of {METRIC_MODULES} defines: {unknown}"
    latency = rules["ApiLatencyP99OverSla"]["expr"]
    assert "histogram_quantile(0.99" in latency and "recsys_request_latency_seconds_bucket" in latency
    assert float(latency.split(">")[-1]) == SLA_SECONDS
    assert {"TargetDown", "ApiHighErrorRatio", "ApiHighFallbackRatio"} <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name


def _alert_test_cases() -> dict[str, tuple[int, int]]:
    """Alert name -> (firing cases, quiet cases) over every `promtool test rules` file."""
    cases: dict[str, list[int]] = {}
    for path in sorted((PROMETHEUS_DIR / "tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], [0, 0])[0 if case.get("exp_alerts") else 1] += 1
    return {name: (fire, quiet) for name, (fire, quiet) in cases.items()}


def test_every_alert_has_a_firing_and_a_quiet_test_case() -> None:
    cases = _alert_test_cases()
    for name, rule in _rules().items():
        if "alert" not in rule:
            continue
        fire, quiet = cases.get(name, (0, 0))
        assert fire and quiet, f"{name}: {fire} firing and {quiet} quiet cases in deploy/prometheus/tests"
    # Every rule file is loaded by some test file.
    loaded = {
        (path.parent / f).resolve()
        for path in (PROMETHEUS_DIR / "tests").glob("*.yml")
        for f in yaml.safe_load(path.read_text())["rule_files"]
    }
    assert {p.resolve() for p in _rule_files()} <= loaded


def test_a_hard_fault_has_a_fast_critical_alert() -> None:
    """Fault -> alert must stay within 120 s: a rule with a 1-minute window and a short `for`
    beside each slow availability rule (tests/integration/test_alert_e2e.py measures it)."""
    rules = _rules()
    for name in ("ApiFallbackSurge", "ApiErrorSurge"):
        rule = rules[name]
        assert "[1m]" in rule["expr"] and rule["labels"]["severity"] == "critical", name
        assert rule["for"] in ("15s", "30s"), name


def test_runbook_covers_every_alert() -> None:
    """docs/runbook.md: a section per alert with its meaning, confirmation, first mitigation and recovery."""
    text = (ROOT / "docs" / "runbook.md").read_text()
    sections = {
        name: body
        for heading, body in zip(
            re.findall(r"^### (.+)$", text, re.M), re.split(r"^### .+$", text, flags=re.M)[1:], strict=True
        )
        for name in re.findall(r"\b([A-Z][A-Za-z0-9]+)\b(?= \()", heading)
    }
    for name, rule in _rules().items():
        if "alert" not in rule:
            continue
        assert name in sections, f"docs/runbook.md has no section for {name}"
        for part in ("**Means**", "**Confirm**", "**First mitigation**", "**Recovery**"):
            assert part in sections[name], f"docs/runbook.md, {name}: no {part}"


def test_serving_exports_every_metric_of_the_contract() -> None:
    from serving import metrics as serving_metrics

    names = set()
    for metric in vars(serving_metrics).values():
        if hasattr(metric, "_name") and hasattr(metric, "_type"):
            suffix = {"counter": "_total", "histogram": "_bucket"}.get(metric._type, "")
            names.add(f"{metric._name}{suffix}")
    missing = METRIC_CONTRACT - names
    assert not missing, f"serving/metrics.py does not export {missing}"


# === Alertmanager ===================================================================================


def test_amtool_accepts_the_config() -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    run_tool([amtool, "check-config", str(ALERTMANAGER_FILE)])


def test_alerts_go_to_the_api_sink_with_the_admin_token() -> None:
    argv = command("alertmanager")
    [config] = [a.split("=", 1)[1] for a in argv if a.startswith("--config.file=")]
    assert host_path("alertmanager", config) == ALERTMANAGER_FILE
    am = yaml.safe_load(ALERTMANAGER_FILE.read_text())
    [receiver] = [r for r in am["receivers"] if r["name"] == am["route"]["receiver"]]
    [hook] = receiver["webhook_configs"]
    url = urlsplit(hook["url"])
    assert (url.hostname, url.port, url.path) == ("api", PORTS["api"].listen, "/admin/alerts")
    # The token file is the compose secret fed by the same variable the API reads.
    credentials = hook["http_config"]["authorization"]["credentials_file"]
    secret = PurePosixPath(credentials).name
    assert credentials == f"/run/secrets/{secret}"
    assert secret in services()["alertmanager"]["secrets"]
    # The API reads the same secret as a file, never the token from its environment.
    assert environment("api")["RECSYS_ADMIN_TOKEN_FILE"] == credentials
    assert secret in services()["api"]["secrets"]
    assert "RECSYS_ADMIN_TOKEN" not in environment("api")
    assert compose()["secrets"][secret]["environment"] == "RECSYS_ADMIN_TOKEN"


# === Grafana ===================================================================================


def test_grafana_datasource_and_dashboards_are_wired() -> None:
    [datasource] = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert endpoint(datasource["url"]) == ("prometheus", PORTS["prometheus"].listen)
    assert host_path("grafana", "/etc/grafana/provisioning") == (GRAFANA_DIR / "provisioning").resolve()
    [provider] = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/recsys.yml").read_text())["providers"]
    assert host_path("grafana", provider["options"]["path"]) == (GRAFANA_DIR / "dashboards").resolve()
    dashboards = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    assert dashboards
    uids = set()
    for path in dashboards:
        dash = json.loads(path.read_text())
        uids.add(dash["uid"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dash["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"], f"{path.name}: {panel['title']}"
    assert len(uids) == len(dashboards)


def test_dashboard_queries_are_valid_promql_on_contract_metrics(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    exprs = [
        t["expr"]
        for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
        for p in json.loads(path.read_text())["panels"]
        for t in p["targets"]
    ]
    used = {m for e in exprs for m in _metric_names(e)}
    unknown = used - exported_metric_names()
    assert not unknown, f"panels name metrics no module of {METRIC_MODULES} defines: {unknown}"
    # promtool has no query linter: wrap each query in a recording rule and let it parse them.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "1m")}
        for i, e in enumerate(exprs)
    ]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_tool([promtool, "check", "rules", str(rule_file)])
