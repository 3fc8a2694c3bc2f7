"""A real Prometheus for the dev stack: Debian's ``prometheus`` binary (``make prometheus-tools`` installs it),
scraping every worker listed in its targets directory and evaluating the project's alert rules.

Workers are found through file service discovery: a JSON file per worker in ``targets/`` (``add_target``)
is picked up within a second, so tests and the demo point it at workers on any port without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack.common import StackError, _port_in_use
from devstack.nodes import Node

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "monitoring" / "alerts.yml"


@dataclass
class PrometheusNode(Node):
    """One Prometheus server with its config, TSDB and log in its state directory."""

    kind: str = "prometheus"
    scrape_interval: str = "1s"

    @property
    def targets(self) -> Path:
        return self.state / "targets"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def render_config(self) -> str:
        return "\n".join([
            "# Written by devstack; the project's own config for docker is monitoring/prometheus.yml.",
            "global:",
            f"  scrape_interval: {self.scrape_interval}",
            f"  evaluation_interval: {self.scrape_interval}",
            "rule_files:",
            f"  - {RULES}",
            "scrape_configs:",
            "  - job_name: scorer",
            "    metrics_path: /metrics",
            "    file_sd_configs:",
            "      - files:",
            f"          - {self.targets}/*.json",
            "        refresh_interval: 1s",
            "",
        ])

    def prepare(self) -> None:
        self.targets.mkdir(parents=True, exist_ok=True)
        (self.state / "data").mkdir(parents=True, exist_ok=True)
        (self.state / "prometheus.yml").write_text(self.render_config())

    def command(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus is not installed; `make prometheus-tools` installs Debian's package")
        return [binary, f"--config.file={self.state / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.state / 'data'}", "--storage.tsdb.retention.time=2d",
                f"--web.listen-address={self.address}:{self.port}", "--log.level=warn"]

    def ready(self) -> bool:
        if not _port_in_use(self.address, self.port):
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310 - local URL
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def add_target(self, name: str, address: str, **labels: str) -> Path:
        """Scrape ``address`` (host:port of a worker's web port) from now on, with extra ``labels``."""
        self.targets.mkdir(parents=True, exist_ok=True)
        path = self.targets / f"{name}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": [address], "labels": labels}]))
        temporary.rename(path)  # atomic: Prometheus never reads half a file
        return path

    def remove_target(self, name: str) -> None:
        (self.targets / f"{name}.json").unlink(missing_ok=True)


def default_prometheus() -> PrometheusNode:
    from devstack.common import STATE, _env_int

    return PrometheusNode(
        name="prometheus1",
        address=os.environ.get("SCORER_PROMETHEUS_ADDRESS", "127.0.0.1"),
        port=_env_int("SCORER_PROMETHEUS_PORT", 9090),
        state=Path(os.environ.get("SCORER_PROMETHEUS_DATA", STATE / "prometheus")),
        heap="",
        start_timeout=60.0,
    )
