"""What the dev stack's parts share: where things live, one-line errors, process and port checks, java, jars."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SCORER_DEVSTACK_CACHE", Path.home() / ".cache" / "scorer" / "devstack"))
STATE = Path(os.environ.get("SCORER_DEVSTACK_STATE", CACHE / "state"))
MVN_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"


class StackError(Exception):
    """A failure to report as one line (the CLI prints it and exits 1)."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise StackError(f"{name} must be a port number; got {raw!r}")
    return int(raw)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(content[-lines:])


# --------------------------------------------------------------------------------------------- java


def find_java(purpose: str, accept: tuple[int, ...]) -> str:
    """A java binary whose major version is in ``accept``: SCORER_JAVA, JAVA_HOME, PATH, /usr/lib/jvm."""
    candidates = []
    if os.environ.get("SCORER_JAVA"):
        candidates.append(os.environ["SCORER_JAVA"])
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for jvm_dir in os.environ.get("SCORER_JVM_DIRS", "/usr/lib/jvm").split(":"):
        if jvm_dir:
            candidates += sorted(str(p) for p in Path(jvm_dir).glob("*/bin/java"))
    seen = []
    for java in candidates:
        if not os.access(java, os.X_OK):
            continue
        major = java_major(java)
        seen.append(f"{java} ({major})")
        if major in accept:
            return java
    wanted = " or ".join(str(v) for v in accept)
    if not seen:
        raise StackError(f"Java is missing: {purpose} needs a JDK {wanted} (apt-get install openjdk-17-jdk-headless)")
    raise StackError(f"{purpose} needs Java {wanted}; found only {', '.join(seen)} (set SCORER_JAVA)")


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


# ------------------------------------------------------------------------------------------ artifacts


def ensure_artifacts(kind: str) -> Path:
    """Resolve the jars for ``kind`` (cassandra or kafka) into the cache once; return the lib dir."""
    pom = HERE / kind / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    lib = CACHE / f"{kind}-{digest}" / "lib"
    marker = lib.parent / "complete"
    if marker.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"Maven is missing: it is needed once to fetch the {kind} jars into {lib} (apt-get install maven)"
        )
    print(f"fetching {kind} jars from Maven Central into {lib} (once) ...", flush=True)
    lib.mkdir(parents=True, exist_ok=True)
    log = lib.parent / "mvn.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [mvn, "-B", "-q", "-f", str(pom), MVN_PLUGIN, f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if proc.returncode != 0:
        raise StackError(f"Maven could not fetch the {kind} jars (exit {proc.returncode}); see {log}:\n{tail(log)}")
    marker.write_text(digest)
    return lib
