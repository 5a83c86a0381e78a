"""Apache Kafka, single node in KRaft mode, from the official jars on Maven Central, cached under var/."""

from __future__ import annotations

import base64
import signal
import subprocess
import uuid
from pathlib import Path

from events.kafka import broker_reachable, ensure_topics
from events.settings import KafkaSettings, get_kafka_settings
from recsys.settings import StackSettings
from recsys.stack import prereqs
from recsys.stack.base import ComponentStatus, State
from recsys.stack.errors import StackError
from recsys.stack.process import ManagedProcess, tail

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
"""The small pom whose dependencies are the broker's runtime classpath."""
_LOOPBACK = ("127.0.0.1", "localhost")


def local_port(bootstrap: str) -> int:
    """The port of a single loopback bootstrap address; anything else must be configured as external."""
    host, _, port = bootstrap.strip().rpartition(":")
    if "," in bootstrap or host not in _LOOPBACK or not port.isdigit():
        raise StackError(
            f"RECSYS_KAFKA_BOOTSTRAP_SERVERS={bootstrap!r} is not one loopback address: "
            "set RECSYS_KAFKA_EXTERNAL=true to use a broker managed elsewhere"
        )
    return int(port)


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes in URL-safe base64, never starting with "-".

    Kafka's own Uuid.randomUuid() redraws ids with a leading "-" because its command-line tools
    would read them as options (1 draw in 64); so does this.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaBroker:
    """Fetches jars once, formats storage once, runs `kafka.Kafka`, waits for metadata, creates topics."""

    name = "kafka"

    def __init__(self, stack: StackSettings, kafka: KafkaSettings | None = None) -> None:
        self.stack = stack
        self.kafka = kafka or get_kafka_settings()
        self.home = stack.var / "kafka"
        self.lib = self.home / f"lib-{stack.kafka_version}"
        self.data = self.home / "data"
        self.proc = ManagedProcess("kafka", stack.var / "run", stack.var / "log")

    @property
    def address(self) -> str:
        """Bootstrap servers as clients see them."""
        return self.kafka.bootstrap_servers

    def status(self) -> ComponentStatus:
        """Healthy when a metadata request succeeds."""
        pid = self.proc.pid()
        ok = broker_reachable(self.kafka, timeout_s=2.0)
        managed = pid is not None
        if ok:
            detail = "external" if self.kafka.external else ("" if managed else "running, not started by us")
            return ComponentStatus(self.name, self.address, State.HEALTHY, managed, pid, detail)
        state = State.UNHEALTHY if managed or self.kafka.external else State.STOPPED
        return ComponentStatus(self.name, self.address, state, managed, pid)

    def up(self) -> ComponentStatus:
        """Start the broker unless it already answers, then make sure the platform's topics exist."""
        if broker_reachable(self.kafka, timeout_s=2.0):
            ensure_topics(settings=self.kafka)
            return self.status()
        if self.kafka.external:
            raise StackError(f"external Kafka at {self.address} does not answer a metadata request")
        if self.proc.running():
            # Ours but not answering yet (e.g. a start in progress): wait rather than start twice.
            self.proc.wait_healthy(self._healthy, self.stack.start_timeout_s, "metadata request")
        else:
            self._start()
        ensure_topics(settings=self.kafka)
        return self.status()

    def down(self) -> bool:
        """Stop the broker if we started it (a controlled shutdown takes a few seconds)."""
        return self.proc.stop(timeout_s=30.0)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Fault drills: end the broker with `sig` (SIGTERM: controlled shutdown; SIGKILL: a crash); returns its pid.

        Waits until the process is gone; `up()` restarts it on the same storage. A broker this
        stack did not start (external, or started by hand) cannot be killed: StackError.
        """
        if self.kafka.external:
            raise StackError(f"Kafka at {self.address} is external: the stack cannot signal it")
        return self.proc.kill(sig, timeout_s=60.0)

    def _healthy(self) -> bool:
        return broker_reachable(self.kafka, timeout_s=1.0)

    def _start(self) -> None:
        port = local_port(self.kafka.bootstrap_servers)
        tools = prereqs.require([prereqs.JAVA, prereqs.MAVEN], self.stack.auto_install)
        self._fetch_jars(tools["mvn"])
        config = self._write_config(port)
        self._format_storage(tools["java"], config)
        argv = [
            tools["java"],
            f"-Xmx{self.stack.kafka_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-cp",
            f"{self.lib}/*",
            "kafka.Kafka",
            str(config),
        ]
        self.proc.start(argv, cwd=self.home)
        self.proc.wait_healthy(self._healthy, self.stack.start_timeout_s, "metadata request")

    def _fetch_jars(self, mvn: str) -> None:
        marker = self.lib / ".complete"
        if marker.exists():
            return
        if not POM.exists():
            raise StackError(f"{POM} is missing: run the stack manager from a checkout of the repository")
        self.lib.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dkafka.version={self.stack.kafka_version}",
                f"-DoutputDirectory={self.lib}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"fetching Kafka {self.stack.kafka_version} jars failed:\n{result.stdout[-3000:]}"
            )
        marker.write_text("ok\n")

    def _write_config(self, port: int) -> Path:
        self.data.mkdir(parents=True, exist_ok=True)
        controller = self.stack.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Local state should not grow without bound: keep a week or 2 GiB per partition.
            "log.retention.hours": "168",
            "log.retention.bytes": str(2 * 1024**3),
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _format_storage(self, java: str, config: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_file = self.home / "cluster-id"
        cluster_id = cluster_file.read_text().strip() if cluster_file.exists() else ""
        if not cluster_id or cluster_id.startswith("-"):  # a dash id from before the fix is redrawn
            cluster_id = new_cluster_id()
            cluster_file.write_text(cluster_id + "\n")
        result = subprocess.run(
            [
                java,
                "-cp",
                f"{self.lib}/*",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # "=": an id is data even if it looks like an option
                "-c",
                str(config),
                "--standalone",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )

    def log_tail(self) -> str:
        """The broker log's last lines."""
        return tail(self.proc.log_file)
