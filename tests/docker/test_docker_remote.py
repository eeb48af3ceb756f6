"""A "remote" engine over ssh: DOCKER_HOST=ssh://root@127.0.0.1:<port> through a real
sshd started for the test, with L2CHAOS_DOCKER_REACH=ssh, so the engine is driven over
ssh (`docker system dial-stdio`) and every published port is reached through the run's
ssh tunnel, on local ports that differ from the published ones."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from l2chaos.backends.docker import DockerBackend, DockerSettings, run_objects
from l2chaos.backends.procs import MarkerStore, pids_of_run

pytestmark = pytest.mark.docker


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# sshd's one library that a Debian system with the ssh client may lack
SSHD_PACKAGES = ("openssh-server", "libwrap0")


def lib_path(root: Path) -> str:
    return ":".join(str(p) for p in sorted(root.glob("**/lib/*-linux-gnu")) if p.is_dir())


def _unresolved_libs(binary: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False, env=env)
    return [line.split()[0] for line in out.stdout.splitlines() if "not found" in line]


def find_sshd(prefer_system: bool = True) -> tuple[Path | None, str, dict[str, str]]:
    """An sshd to run as this test's server, and the environment to run it in: the
    system's, else one extracted (never installed: no maintainer scripts, no service)
    from Debian's packages into the cache. (None, why, env) when neither works."""
    from l2chaos.backends.paths import cache_dir

    env = dict(os.environ)
    system = Path("/usr/sbin/sshd")
    if prefer_system and system.is_file():
        return system, "system", env
    root = cache_dir() / "openssh"
    cached = root / "usr" / "sbin" / "sshd"
    if not cached.is_file():
        if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
            return None, "no sshd, and no apt-get/dpkg-deb to fetch Debian's openssh-server", env
        work = Path(tempfile.mkdtemp(prefix="l2chaos-openssh-"))
        try:
            got = subprocess.run(
                ["apt-get", "download", *SSHD_PACKAGES],
                cwd=work, capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
            debs = sorted(work.glob("*.deb"))
            if got.returncode != 0 or len(debs) != len(SSHD_PACKAGES):
                return None, f"apt-get download failed: {got.stderr.strip()[-300:]}", env
            tmp_root = work / "root"
            for deb in debs:
                subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_root)], check=True, timeout=60)
            root.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(root, ignore_errors=True)
            shutil.move(str(tmp_root), root)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    env["LD_LIBRARY_PATH"] = lib_path(root)
    missing = _unresolved_libs(cached, env)
    if missing:
        return None, f"the extracted sshd lacks libraries: {', '.join(missing)}", env
    return cached, "extracted", env


def ensure_privsep_user() -> None:
    """sshd refuses to start without its unprivileged `sshd` user, which Debian's package
    creates in a maintainer script the extracted copy never runs: create it as that
    script does (a system user without a shell or a home)."""
    try:
        pwd.getpwnam("sshd")
        return
    except KeyError:
        pass
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("sshd needs its privilege separation user `sshd`; creating it needs root")
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/run/sshd",
         "--shell", "/usr/sbin/nologin", "sshd"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


@pytest.fixture
def ssh_engine(engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if shutil.which("ssh") is None:
        pytest.fail("this test needs the ssh client (Debian's openssh-client)")
    found, why, sshd_env = find_sshd()
    if found is None:
        # not Docker's fault: an ssh server is an extra of this one test, said plainly
        pytest.skip(f"no ssh server to play the remote engine's host: {why}")
    sshd = str(found)
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for key in ("host_key", "id"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
        )
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
    )
    (d / "ssh_config").write_text(
        f"Host 127.0.0.1\n  Port {port}\n  IdentityFile {d / 'id'}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        "  BatchMode yes\n"
    )
    # `ssh` on PATH reads this test's client config (real ssh, real sshd)
    bindir = d / "bin"
    bindir.mkdir()
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {d / "ssh_config"} "$@"\n')
    wrapper.chmod(0o755)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    ensure_privsep_user()
    log = open(d / "sshd.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=sshd_env,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    why = (d / "sshd.log").read_text(errors="replace")[-500:]
                    pytest.fail(f"the test's sshd never listened on {port}: {why}")
                time.sleep(0.05)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        monkeypatch.setenv("DOCKER_HOST", f"ssh://root@127.0.0.1:{port}")
        monkeypatch.setenv("L2CHAOS_DOCKER_REACH", "ssh")
        yield f"ssh://root@127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_a_stack_on_an_ssh_engine_is_reached_through_the_runs_tunnel(
    ssh_engine: str, ds: Any, engine: Any, tmp_path: Path
) -> None:
    backend = DockerBackend(settings=DockerSettings.from_env())
    run_id = ds.new_run_id("ssh")
    stack = backend.up(ds.stack_run(), run_id=run_id, run_dir=tmp_path / "run", env={})
    try:
        assert stack.platform.engine.host == ssh_engine
        assert stack.platform.engine.local is False
        ep = stack.direct_endpoint("api")
        assert ep.host == "127.0.0.1"
        published = stack.platform.container("api").attrs["HostConfig"]["PortBindings"]["8080/tcp"][
            0
        ]
        assert published["HostIp"] == "127.0.0.1"
        assert int(published["HostPort"]) != ep.port  # reached through the forward
        assert ds.get(stack, "front", "/via?path=/boot")[0] == 200
        assert ds.db_ok(stack)
        # the ssh tunnel carries the run id, for gc (so do the containers' processes:
        # this "remote" engine runs on this very host)
        assert [p for p in pids_of_run(run_id) if comm(p) == "ssh"]
        assert any(m.run_id == run_id for _, m in MarkerStore().all_by_run())
        # faults go over ssh to the engine like any other call
        old = ds.boot(stack, "api")
        stack.control.restart("api", 5.0)
        stack.control.wait_ready("api", 30)
        assert ds.boot(stack, "api") != old
    finally:
        backend.down(stack)
    assert run_objects(engine.client, run_id) == {"containers": [], "networks": [], "volumes": []}
    assert not [p for p in pids_of_run(run_id) if comm(p) == "ssh"]
    assert not any(m.run_id == run_id for _, m in MarkerStore().all_by_run())
