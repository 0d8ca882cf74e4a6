"""The container image (deploy/Dockerfile) built with podman from a Debian base made by debootstrap, started with the
dev models mounted, answering /readyz, its HEALTHCHECK passing, as a non-root user.

Opt-in (``GUARD_TEST_CONTAINER=1``): a cold build downloads guard's dependencies (~2 GB) and takes ~10 minutes on
2 cores, a warm one (cached layers) well under one; CI does not run it. Needs root, podman, debootstrap and a Debian
mirror (``apt-get install podman buildah debootstrap runc``). Where the host's CA store has a TLS-inspecting proxy's
certificate, it is handed to the build (deploy/certs/) and torch's CPU wheel from the host's wheel folder
(deploy/wheels/, ``PIP_FIND_LINKS``), since torch's own index may be unreachable.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.serving import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.environ.get("GUARD_TEST_CONTAINER"), reason="opt-in: GUARD_TEST_CONTAINER=1"),
]

BASE = "localhost/guard-base:bookworm"
IMAGE = "localhost/guard:cpu-test"
SITE_CERTS = Path("/usr/local/share/ca-certificates")


def podman() -> tuple[list[str], list[str]]:
    """podman, with runc where crun cannot run here (cgroups v1 hybrid hosts) and the ulimits this process may set
    (a sandbox may refuse podman's defaults)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (apt-get install podman buildah debootstrap runc)")
    nofile, nproc = (
        resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096),
    )
    flags = ["--runtime", "runc"] if shutil.which("runc") else []
    return ["podman", *flags], [f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={nproc}:{nproc}"]


def _run(command: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, check=False, text=True, capture_output=True, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def build(engine: list[str], limits: list[str]) -> None:
    if subprocess.run([*engine, "image", "exists", BASE], check=False).returncode != 0:
        _run(["bash", str(ROOT / "deploy" / "debootstrap-base.sh"), "podman"], timeout=900)
    for cert in SITE_CERTS.glob("*.crt"):
        shutil.copy(cert, ROOT / "deploy" / "certs" / cert.name)
    for folder in filter(None, os.environ.get("PIP_FIND_LINKS", "").split()):
        for wheel in Path(folder).glob("torch-2.13.0*.whl"):
            shutil.copy(wheel, ROOT / "deploy" / "wheels" / wheel.name)
    # --format docker: the OCI image format has no HEALTHCHECK (podman drops it with a warning).
    command = [*engine, "build", "--format", "docker", "--network", "host", *limits, "-f", "deploy/Dockerfile"]
    command += ["--build-arg", f"BASE={BASE}", "--build-arg", "TORCH_INDEX=", "-t", IMAGE, "."]
    _run(command, timeout=1800, cwd=ROOT)


@pytest.fixture(scope="module")
def container(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str]]]:
    engine, limits = podman()
    build(engine, limits)
    home = tmp_path_factory.mktemp("container-home")
    shutil.copytree(guard_home / "dev-models", home / "dev-models")
    subprocess.run(["chmod", "-R", "a+rwX", str(home)], check=True)
    name, port = f"guard-test-{uuid.uuid4().hex[:8]}", free_port()
    env = {"GUARD_PROFILE": "dev", "GUARD_API_KEY": "container-test-key", "PORT": str(port)}
    # The dev checkpoints name their tokenizer folders by absolute path: mount the originals where they were built.
    originals = guard_home / "dev-models"
    command = [*engine, "run", "-d", "--name", name, "--network", "host", *limits, "-v", f"{home}:/var/lib/guard"]
    command += ["-v", f"{originals}:{originals}:ro"]
    command += [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    _run([*command, IMAGE], timeout=120)
    try:
        yield name, f"http://127.0.0.1:{port}", engine
    finally:
        subprocess.run([*engine, "rm", "-f", name], check=False, capture_output=True)


def test_the_image_serves_readyz_as_a_non_root_user_and_its_healthcheck_passes(
    container: tuple[str, str, list[str]],
) -> None:
    name, base, engine = container
    deadline = time.monotonic() + 600
    while True:
        try:
            ready = httpx.get(f"{base}/readyz", timeout=5)
            if ready.status_code == 200:
                break
        except httpx.TransportError:
            pass
        logs = subprocess.run([*engine, "logs", name], check=False, capture_output=True, text=True)
        state = subprocess.run([*engine, "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True)
        assert state.stdout.strip() == "true", logs.stdout + logs.stderr
        assert time.monotonic() < deadline, "not ready:\n" + logs.stdout + logs.stderr
        time.sleep(2)
    assert ready.json()["status"] == "ready"
    assert _run([*engine, "exec", name, "id", "-u"], timeout=30).stdout.strip() == "10001"
    _run([*engine, "healthcheck", "run", name], timeout=60)  # exit 0: the image's HEALTHCHECK passed
    scan = httpx.post(
        f"{base}/v1/scan",
        json={"text": "Write to maria.jones@example.org today.", "stage": "input"},
        headers={"Authorization": "Bearer container-test-key"},
        timeout=60,
    )
    assert scan.json()["redacted_text"] == "Write to <EMAIL_ADDRESS_1> today."
