"""Offline checks of the Kubernetes manifests in deploy/k8s/ against Kubernetes' schemas and the code.

No cluster here: every manifest goes through `kubernetes-validate` (the OpenAPI schemas of
Kubernetes KUBE_VERSION shipped in the package, strict: unknown fields fail), then is
cross-checked with what the code expects: the `recsys` commands and their options (parsed by the
real typer app), every environment variable (a field of a settings class, by its env prefix, and
its value accepted by that class), the serving probes and ports, the ingestion replicas against
the partitions of `movielog`, the security context, and the names that tie objects together.
"""

from __future__ import annotations

import ast
import copy
import importlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import typer
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from core.settings import env_names
from events.settings import KafkaSettings
from recsys.knobs import SETTINGS_CLASSES
from serving.settings import ServingSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
KUBE_VERSION = "1.30"
"""Kubernetes version the manifests are validated against (the package ships 1.25 to 1.37)."""
PLACEHOLDER = "REPLACE_ME"
VALID_TOKEN = "k8s-test-admin-token-0123456789abcdef"
"""What an operator puts in place of the placeholders when this test checks values."""

EXPECTED_COMMANDS = {"serve", "ingest", "monitor stream", "train", "operate"}
"""The `recsys` commands the cluster must run."""
SERVING = "recsys-api"
HEALTH = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
METRICS_PORT_KNOBS = {
    "ingest": ("RECSYS_INGEST_METRICS_PORT", "RECSYS_INGEST_METRICS_HOST"),
    "monitor stream": ("RECSYS_MONITOR_METRICS_PORT", "RECSYS_MONITOR_METRICS_HOST"),
}
"""Long-running commands with a /metrics server: its port knob and its bind-host knob."""
ENDPOINT_KNOBS = (
    "RECSYS_KAFKA_BOOTSTRAP_SERVERS",
    "RECSYS_REDIS_URL",
    "RECSYS_SIM_API_URL",
    "RECSYS_SERVING_METADATA_URL",
)
"""Knobs that name another service: the host must be a Service of these manifests."""

# --- loading --------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


@cache
def load(path: Path) -> tuple[dict[str, Any], ...]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs), f"{path.name}: expected YAML mappings"
    return tuple(docs)


def objects(kind: str | None = None) -> list[dict[str, Any]]:
    return [d for p in manifest_files() for d in load(p) if kind is None or d["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    return template["spec"] if isinstance(template, dict) else None


def workloads() -> list[dict[str, Any]]:
    return [o for o in objects() if pod_spec(o) is not None]


def containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in workloads():
        spec = pod_spec(obj)
        assert spec is not None
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            yield obj, c


def argv(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in [*container.get("command", []), *container.get("args", [])]]


def split_recsys(words: list[str]) -> tuple[str, list[str]]:
    """('monitor stream', [options]) from ['recsys', 'monitor', 'stream', ...options]."""
    n = 1
    while n < len(words) and not words[n].startswith("-"):
        n += 1
    return " ".join(words[1:n]), words[n:]


def recsys_containers() -> list[tuple[dict[str, Any], dict[str, Any], str, list[str]]]:
    out = []
    for obj, c in containers():
        words = argv(c)
        if words and words[0] == "recsys":
            out.append((obj, c, *split_recsys(words)))
    return out


RECSYS_IDS = [f"{o['metadata']['name']}" for o, _, _, _ in recsys_containers()]


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# --- settings and CLI ------------------------------------------------------------------------


def settings_classes() -> list[type[BaseSettings]]:
    out = []
    for path in SETTINGS_CLASSES:
        module, _, name = path.partition(":")
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, BaseSettings), path
        out.append(cls)
    return out


@cache
def knobs() -> frozenset[str]:
    """Every variable a settings field reads: env_prefix + field name, or its alias (nested too)."""
    return frozenset(n.upper() for cls in settings_classes() for n in env_names(cls))


def knob_default(cls: type[BaseSettings], field: str) -> Any:
    return cls.model_fields[field].default


def knob_default_by_env(env: str) -> Any:
    """The default of the settings field the variable `env` sets."""
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field, info in cls.model_fields.items():
            alias = info.validation_alias
            if (alias if isinstance(alias, str) else prefix + field).upper() == env:
                return info.default
    raise AssertionError(f"{env} is not a knob")


@cache
def cli_commands() -> dict[str, Any]:
    """'monitor stream' -> the click command of the real `recsys` app (typer vendors click: duck-typed)."""
    module = importlib.import_module("recsys.cli")
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        out[" ".join(path)] = cmd
        if hasattr(cmd, "list_commands"):
            ctx = cmd.make_context("recsys", [], resilient_parsing=True)
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), [*path, sub])

    walk(typer.main.get_command(module.app), [])
    return out


def config_data() -> dict[str, str]:
    return {str(k): str(v) for o in objects("ConfigMap") for k, v in (o.get("data") or {}).items()}


def secret_data() -> dict[str, str]:
    out: dict[str, str] = {}
    for o in objects("Secret"):
        assert "data" not in o, f"Secret {o['metadata']['name']}: use stringData (placeholders stay readable)"
        out |= {str(k): str(v) for k, v in (o.get("stringData") or {}).items()}
    return out


def container_env(container: dict[str, Any], secrets: Mapping[str, str]) -> dict[str, str]:
    """The RECSYS_* environment a container starts with (envFrom, then env), secrets as given."""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            env |= {
                str(k): str(v) for k, v in named("ConfigMap", src["configMapRef"]["name"])["data"].items()
            }
        if "secretRef" in src:
            names = named("Secret", src["secretRef"]["name"])["stringData"]
            env |= {str(k): secrets[str(k)] for k in names}
    for item in container.get("env", []):
        assert "value" in item, f"{container['name']}: {item['name']} must have a literal value"
        env[str(item["name"])] = str(item["value"])
    return env


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ without the caller's RECSYS_* variables, plus `env`, restored afterwards."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("RECSYS_")]:
            del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def filled_secrets() -> dict[str, str]:
    return {k: v.replace(PLACEHOLDER, VALID_TOKEN) for k, v in secret_data().items()}


# === schemas ===================================================================================


def test_kustomization_lists_exactly_the_manifests() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in load(path):
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")


def test_the_validator_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    good = named("Deployment", SERVING)
    misspelt = copy.deepcopy(good)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    for bad in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)


# === commands =================================================================================


def test_the_cluster_runs_the_platform_commands() -> None:
    assert {path for _, _, path, _ in recsys_containers()} == EXPECTED_COMMANDS


@pytest.mark.parametrize("index", range(len(recsys_containers())), ids=RECSYS_IDS)
def test_recsys_command_exists_and_its_options_parse(index: int) -> None:
    obj, _, path, args = recsys_containers()[index]
    commands = cli_commands()
    where = f"{obj['kind']} {obj['metadata']['name']}"
    assert path in commands, f"{where}: `recsys {path}` is not a command"
    if hasattr(commands[path], "list_commands"):
        assert getattr(commands[path], "invoke_without_command", False), (
            f"{where}: `recsys {path}` needs more"
        )
    try:  # parses and converts every option as a real run would, without running the command
        commands[path].make_context(f"recsys {path}", list(args))
    except Exception as exc:  # typer vendors click: its exception classes are private
        pytest.fail(f"{where}: `recsys {path} {' '.join(args)}` does not parse: {exc!r}")


def test_python_snippets_compile_and_import_real_names() -> None:
    for obj, c in containers():
        words = argv(c)
        if not words or words[0] != "python":
            continue
        snippet = words[words.index("-c") + 1]
        for node in ast.walk(ast.parse(snippet)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (
                        f"{obj['metadata']['name']}: {node.module}.{alias.name}"
                    )


# === environment ==============================================================================


def test_every_variable_is_a_settings_knob() -> None:
    used = set(config_data()) | set(secret_data())
    used |= {str(item["name"]) for _, c in containers() for item in c.get("env", [])}
    unknown = sorted(used - knobs())
    assert not unknown, f"no settings class reads {unknown} (`recsys config` lists the knobs)"


def test_env_sources_exist() -> None:
    for obj, c in containers():
        for src in c.get("envFrom", []):
            ref = src.get("configMapRef") or src.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in src else "Secret"
            named(kind, ref["name"])  # fails unless exactly one exists
        assert c.get("envFrom"), f"{obj['metadata']['name']}: takes no settings"


def test_secrets_are_placeholders_and_not_in_the_configmap() -> None:
    secrets = secret_data()
    assert secrets and all(PLACEHOLDER in v for v in secrets.values()), "every Secret value is a placeholder"
    leaked = [k for k in config_data() if re.search(r"TOKEN|PASSWORD|SECRET", k)]
    assert not leaked, f"credentials belong in the Secret: {leaked}"
    for key in ("RECSYS_REDIS_URL",):  # may hold a password
        assert key not in config_data(), key


@pytest.mark.parametrize("index", range(len(recsys_containers())), ids=RECSYS_IDS)
def test_values_are_accepted_by_the_settings(index: int) -> None:
    obj, c, path, args = recsys_containers()[index]
    env = container_env(c, filled_secrets())
    if path == "serve":  # `recsys serve` passes its flags to the settings through the environment
        env |= {
            "RECSYS_SERVING_HOST": option(args, "--host") or "",
            "RECSYS_SERVING_PORT": option(args, "--port") or "",
        }
    with environment(env):
        for cls in settings_classes():
            try:
                cls()
            except ValidationError as exc:
                pytest.fail(f"{obj['metadata']['name']}: {cls.__name__} rejects the manifest's values: {exc}")


def test_the_placeholder_admin_token_keeps_the_api_from_starting() -> None:
    _, c, _, args = next(r for r in recsys_containers() if r[2] == "serve")
    env = container_env(c, secret_data()) | {"RECSYS_SERVING_HOST": option(args, "--host") or ""}
    with environment(env), pytest.raises(ValidationError, match="RECSYS_ADMIN_TOKEN"):
        ServingSettings()


def test_endpoints_name_services_of_the_manifests() -> None:
    services = {o["metadata"]["name"] for o in objects("Service")}
    env = config_data() | filled_secrets()
    for knob in ENDPOINT_KNOBS:
        assert knob in env, f"{knob} unset: it would point at 127.0.0.1"
        value = env[knob].split(",")[0]
        host = urlsplit(value if "://" in value else f"tcp://{value}").hostname
        assert host in services, f"{knob}={env[knob]}: {host} is not a Service here"
    for name in ("RECSYS_KAFKA_EXTERNAL", "RECSYS_REDIS_EXTERNAL"):
        assert config_data().get(name) == "true", f"{name}: the stack manager must never start its own"


# === serving: probes, ports, service, autoscaler ==============================================


def _serving() -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    [(obj, c, args)] = [(o, c, a) for o, c, p, a in recsys_containers() if p == "serve"]
    assert obj["metadata"]["name"] == SERVING
    return obj, c, args


def _port(container: dict[str, Any], ref: int | str) -> int:
    """A port number, or the number of the container's port with that name."""
    if isinstance(ref, int):
        return ref
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == ref]
    return int(number)


def test_serving_probes_hit_readyz_and_healthz_on_the_served_port() -> None:
    _, c, args = _serving()
    port = int(option(args, "--port") or knob_default(ServingSettings, "port"))
    assert [p["containerPort"] for p in c["ports"]] == [port]
    for probe, path in HEALTH.items():
        get = c[probe]["httpGet"]
        assert get["path"] == path, f"{probe} must GET {path}"
        assert _port(c, get["port"]) == port, f"{probe} probes another port"
    assert option(args, "--host") == "0.0.0.0", "bind beyond loopback or the probes and the Service fail"


def test_service_targets_the_serving_pods_and_port() -> None:
    obj, c, args = _serving()
    service = named("Service", SERVING)
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert _port(c, port["targetPort"]) == int(option(args, "--port") or 0)


def test_hpa_scales_serving_on_cpu_against_a_cpu_request() -> None:
    hpa = named("HorizontalPodAutoscaler", SERVING)
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", SERVING)
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert 0 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    _, c, args = _serving()
    assert "cpu" in c["resources"]["requests"], "CPU utilisation is relative to the request"
    workers = int(option(args, "--workers") or knob_default(ServingSettings, "workers"))
    assert float(c["resources"]["requests"]["cpu"]) == workers, "one core per uvicorn worker"


# === ingestion, monitoring, jobs ==============================================================


def _env_of(c: dict[str, Any]) -> dict[str, str]:
    return container_env(c, filled_secrets())


def test_ingestion_consumers_fit_the_movielog_partitions() -> None:
    ingest = [(o, c) for o, c, p, _ in recsys_containers() if p == "ingest"]
    assert all(o["kind"] == "Deployment" for o, _ in ingest)
    partitions = int(
        config_data().get("RECSYS_KAFKA_MOVIELOG_PARTITIONS")
        or knob_default(KafkaSettings, "movielog_partitions")
    )
    consumers = sum(int(o["spec"]["replicas"]) for o, _ in ingest)
    assert 0 < consumers <= partitions, f"{consumers} ingestion consumers > {partitions} partitions"
    for o, _ in ingest:  # a rolling update must not add a consumer beyond the partitions
        strategy = o["spec"].get("strategy", {})
        assert strategy.get("type") == "Recreate" or strategy["rollingUpdate"]["maxSurge"] == 0, o["metadata"]


def test_exactly_one_ingestion_worker_runs_the_movie_job() -> None:
    with_job = []
    for o, c, p, _ in recsys_containers():
        if p == "ingest" and _env_of(c).get("RECSYS_INGEST_MOVIE_JOB", "true").lower() == "true":
            with_job.append(int(o["spec"]["replicas"]))
            assert o["spec"]["strategy"]["type"] == "Recreate", "two movie jobs would overlap in a rollout"
    assert with_job == [1], f"replicas running the movie job: {with_job}"


def test_metrics_servers_listen_for_prometheus_and_the_probe() -> None:
    for o, c, p, _ in recsys_containers():
        if p not in METRICS_PORT_KNOBS:
            continue
        port_knob, host_knob = METRICS_PORT_KNOBS[p]
        env = _env_of(c)
        assert env.get(host_knob) == "0.0.0.0", f"{o['metadata']['name']}: set {host_knob}"
        port = int(env.get(port_knob) or knob_default_by_env(port_knob))
        assert [p_["containerPort"] for p_ in c["ports"]] == [port]
        assert _port(c, c["livenessProbe"]["httpGet"]["port"]) == port


def test_singletons_never_overlap() -> None:
    monitor = [o for o, _, p, _ in recsys_containers() if p == "monitor stream"]
    assert [(o["spec"]["replicas"], o["spec"]["strategy"]["type"]) for o in monitor] == [(1, "Recreate")]
    for o, _, p, _ in recsys_containers():
        if p in ("train", "operate"):
            assert o["kind"] == "CronJob" and o["spec"]["concurrencyPolicy"] == "Forbid", p
            assert len(o["spec"]["schedule"].split()) == 5, o["spec"]["schedule"]
    [operate] = [a for _, _, p, a in recsys_containers() if p == "operate"]
    assert "--every" not in operate, "a CronJob takes one step per run (--once)"


# === security and storage =====================================================================


def test_pods_run_as_non_root_on_a_read_only_root() -> None:
    for obj, c in containers():
        where = f"{obj['metadata']['name']}/{c['name']}"
        spec = pod_spec(obj)
        assert spec is not None
        pod_ctx, ctx = spec.get("securityContext", {}), c.get("securityContext", {})
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
        assert ctx.get("readOnlyRootFilesystem") is True, where
        assert ctx.get("allowPrivilegeEscalation") is False, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert set(mounts.values()) <= set(volumes), f"{where}: mounts an undeclared volume"
        assert "emptyDir" in volumes.get(mounts.get("/tmp", ""), {}), f"{where}: /tmp needs an emptyDir"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), f"{where}: {kind}"


def test_local_state_lives_on_the_shared_claim() -> None:
    claims = {o["metadata"]["name"]: o for o in objects("PersistentVolumeClaim")}
    assert all("ReadWriteMany" in c["spec"]["accessModes"] for c in claims.values()), "shared by many pods"
    var_dir = Path(config_data()["RECSYS_VAR_DIR"])
    for obj, c, _, _ in recsys_containers():
        spec = pod_spec(obj)
        assert spec is not None
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        on_claim = [
            Path(m["mountPath"])
            for m in c.get("volumeMounts", [])
            if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") in claims
        ]
        assert any(m == var_dir or m in var_dir.parents for m in on_claim), f"{obj['metadata']['name']}"
