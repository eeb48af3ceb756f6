"""Pure logic of the docker backend and the image pipeline (no engine needed, so these
run even when the docker tests are opted out): image plans and their content keys,
.dockerignore, engine selection (DOCKER_HOST, contexts), how ports are reached,
object names and owners."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from l2chaos.backends.docker import DockerSettings, _owner_alive, _owner_label, docker_name
from l2chaos.backends.docker_engine import (
    DEFAULT_SOCKET,
    Engine,
    EngineUnavailable,
    engine_host,
    host_is_local,
)
from l2chaos.backends.images import PUBLIC_TOXIPROXY, has_tag, plan_images, uses_wheels
from l2chaos.backends.images.plan import _ignored
from l2chaos.backends.images.wheels import platform_tags, source_files, source_root
from l2chaos.errors import SafetyError, StackError, StackSpecError, UsageError
from l2chaos.stackspec import load_stack

HERE = Path(__file__).resolve().parent
TESTSTACK = HERE / "teststack"
ROOT = HERE.parents[1]


def copy_stack(tmp: Path) -> Path:
    dest = tmp / "stack"
    shutil.copytree(TESTSTACK, dest)
    return dest


# ------------------------------------------------------------------ image plans


@pytest.mark.parametrize(
    ("image", "tagged"),
    [
        ("l2chaos/perpdex", False),
        ("myorg/sequencer:1.4", True),
        ("localhost:5000/seq", False),
        ("localhost:5000/seq:2", True),
        ("postgres@sha256:abc", True),
    ],
)
def test_has_tag(image: str, tagged: bool) -> None:
    assert has_tag(image) is tagged


def test_uses_wheels_looks_for_a_copy_of_wheels() -> None:
    assert uses_wheels("FROM x\nCOPY wheels/deps/ /tmp/w/\n")
    assert uses_wheels("from x\n  add wheels/ /w\n")
    assert not uses_wheels("FROM x\nRUN echo wheels/\n")
    assert uses_wheels((ROOT / "stacks" / "perpdex" / "Dockerfile").read_text())


def test_dockerignore_patterns_last_match_wins() -> None:
    pats = [(False, "*.yaml"), (False, "docs"), (True, "keep.yaml")]
    assert _ignored("stack.yaml", pats)
    assert not _ignored("keep.yaml", pats)
    assert _ignored("docs/a/b.txt", pats)  # a folder pattern covers what is below it
    assert not _ignored("tinysvc.py", pats)


def test_offline_plan_of_the_test_stack() -> None:
    spec = load_stack(TESTSTACK / "stack.yaml")
    plan = plan_images(spec, "offline", "amd64")
    assert plan.mode == "offline"
    assert plan.base is not None
    assert plan.base.startswith("l2chaos/base:")
    tiny = plan.services["api"]
    assert tiny == plan.services["front"]  # one image, one build
    assert tiny.startswith("l2chaos-test/tiny:")
    assert plan.services["db"].startswith("l2chaos/postgres:")
    assert plan.toxiproxy.startswith("l2chaos/toxiproxy:")
    assert [b.name for b in plan.builds] == ["postgres", "l2chaos-test/tiny", "toxiproxy"]
    assert all(b.base_image == plan.base for b in plan.builds)
    assert plan.given == []


def test_registry_plan_builds_on_the_public_images() -> None:
    spec = load_stack(TESTSTACK / "stack.yaml")
    plan = plan_images(spec, "registry", "amd64")
    assert plan.base is None
    assert plan.toxiproxy == PUBLIC_TOXIPROXY
    assert plan.given == [PUBLIC_TOXIPROXY]
    pg = next(b for b in plan.builds if b.name == "postgres")
    assert pg.base_image == "postgres:16"  # the stack's postgres.image
    tiny = next(b for b in plan.builds if b.name == "l2chaos-test/tiny")
    assert tiny.base_image is None  # the Dockerfile's default: python:3.11-slim
    offline = plan_images(spec, "offline", "amd64")
    assert plan.services["api"] != offline.services["api"]  # another base, another key


def test_tags_follow_content_only(tmp_path: Path) -> None:
    folder = copy_stack(tmp_path)
    before = plan_images(load_stack(folder / "stack.yaml"), "offline", "amd64")
    assert (
        before.services
        == plan_images(load_stack(TESTSTACK / "stack.yaml"), "offline", "amd64").services
    )
    # the stack file is in .dockerignore: editing it rebuilds nothing
    text = (folder / "stack.yaml").read_text().replace("ready_timeout: 30s", "ready_timeout: 31s")
    (folder / "stack.yaml").write_text(text)
    same = plan_images(load_stack(folder / "stack.yaml"), "offline", "amd64")
    assert same.services == before.services
    # a file of the image changes the service image's tag and nothing else
    (folder / "tinysvc.py").write_text((folder / "tinysvc.py").read_text() + "\n# changed\n")
    after = plan_images(load_stack(folder / "stack.yaml"), "offline", "amd64")
    assert after.services["api"] != before.services["api"]
    assert after.services["db"] == before.services["db"]
    assert after.toxiproxy == before.toxiproxy
    # another architecture is another base and so another image
    arm = plan_images(load_stack(folder / "stack.yaml"), "offline", "arm64")
    assert arm.base != after.base


def test_a_service_with_only_a_command_cannot_run_on_docker(tmp_path: Path) -> None:
    folder = copy_stack(tmp_path)
    text = (folder / "stack.yaml").read_text().replace("    image: l2chaos-test/tiny\n", "", 1)
    (folder / "stack.yaml").write_text(text)
    with pytest.raises(StackSpecError) as err:
        plan_images(load_stack(folder / "stack.yaml"), "offline", "amd64")
    assert err.value.field == "services.api"
    assert err.value.line is not None


def test_a_missing_dockerfile_is_named(tmp_path: Path) -> None:
    folder = copy_stack(tmp_path)
    text = (
        (folder / "stack.yaml")
        .read_text()
        .replace(
            "    image: l2chaos-test/tiny\n",
            "    image: l2chaos-test/tiny\n    dockerfile: nope/Dockerfile\n",
            1,
        )
    )
    (folder / "stack.yaml").write_text(text)
    with pytest.raises(StackSpecError) as err:
        plan_images(load_stack(folder / "stack.yaml"), "offline", "amd64")
    assert err.value.field == "services.api.dockerfile"
    assert "nope/Dockerfile" in str(err.value)


def test_the_own_images_example_uses_its_images_as_given() -> None:
    spec = load_stack(ROOT / "stacks" / "examples" / "own-images" / "stack.yaml")
    plan = plan_images(spec, "offline", "amd64")
    assert plan.services["sequencer"] == "myorg/sequencer:1.4"
    assert sorted(plan.given) == sorted(
        f"myorg/{s}:1.4" for s in ("sequencer", "oracle", "rpc", "bridge", "ui-api")
    )
    assert [b.name for b in plan.builds] == ["postgres", "toxiproxy"]
    assert all(spec.services[s].health == "/health" for s in spec.services if s != "db")
    assert len(spec.links) == 8


def test_the_reference_stack_is_built_from_its_dockerfile() -> None:
    from l2chaos.stacks.perpdex import STACK_FILE

    plan = plan_images(load_stack(STACK_FILE), "offline", "amd64")
    images = {plan.services[s] for s in ("sequencer", "oracle", "rpc", "bridge", "ui-api")}
    assert len(images) == 1
    (build,) = [b for b in plan.builds if b.name == "l2chaos/perpdex"]
    assert build.wheels
    assert build.dockerfile == ROOT / "stacks" / "perpdex" / "Dockerfile"


def test_the_l2chaos_wheel_is_built_from_the_package_folders_only() -> None:
    root = source_root()
    assert root == ROOT
    files = {str(p) for p in source_files(root)}
    assert "setup.py" in files
    assert "harness/backends/images/postgres/Dockerfile" in files
    assert not any(f.startswith(("tests/", "benchmarks/", ".venv/")) for f in files)
    assert not any("__pycache__" in f for f in files)


def test_platform_tags_name_every_older_glibc() -> None:
    tags = platform_tags("amd64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert platform_tags("arm64")[0] == "manylinux_2_36_aarch64"
    with pytest.raises(StackError):
        platform_tags("s390x")


# ------------------------------------------------------------------ engines


def test_docker_host_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.9.8.7:2375")
    monkeypatch.setenv("DOCKER_CONTEXT", "whatever")
    assert engine_host() == ("tcp://10.9.8.7:2375", "DOCKER_HOST")


def test_a_docker_context_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from docker.context import ContextAPI

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    ContextAPI.create_context("farbox", host="tcp://10.1.2.3:2376")
    monkeypatch.setenv("DOCKER_CONTEXT", "farbox")
    host, source = engine_host()
    assert source == "context farbox"
    assert host.endswith("://10.1.2.3:2376")  # the SDK spells tcp as http(s) by TLS
    assert host_is_local(host) is False
    monkeypatch.setenv("DOCKER_CONTEXT", "nosuch")
    with pytest.raises(EngineUnavailable) as err:
        engine_host()
    assert "nosuch" in str(err.value)
    monkeypatch.delenv("DOCKER_CONTEXT")
    assert engine_host() == (DEFAULT_SOCKET, "default socket")


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://localhost:2375", True),
        ("tcp://10.0.0.5:2376", False),
        ("ssh://me@build-box", False),
    ],
)
def test_host_is_local(host: str, local: bool) -> None:
    assert host_is_local(host) is local


def engine(host: str) -> Engine:
    # connect_host reads only the address; no client is needed to decide
    return Engine(client=None, host=host, local=host_is_local(host), source="test")  # type: ignore[arg-type]


def test_ports_of_a_local_engine_are_reached_on_loopback() -> None:
    s = DockerSettings.from_env({})
    assert (s.bind, s.reach) == ("127.0.0.1", "direct")
    assert s.connect_host(engine(DEFAULT_SOCKET)) == "127.0.0.1"
    assert DockerSettings(bind="0.0.0.0").connect_host(engine(DEFAULT_SOCKET)) == "127.0.0.1"


def test_a_remote_engine_needs_a_reachable_bind_or_a_tunnel() -> None:
    remote = engine("tcp://10.0.0.5:2376")
    with pytest.raises(StackError) as err:
        DockerSettings().connect_host(remote)
    assert "L2CHAOS_DOCKER_BIND=0.0.0.0" in str(err.value)
    assert "L2CHAOS_DOCKER_REACH=ssh" in str(err.value)
    # publishing on every address of the engine's host: reached at its name
    assert DockerSettings(bind="0.0.0.0").connect_host(remote) == "10.0.0.5"
    # an explicit reach host is the user's own choice
    s = DockerSettings(bind="0.0.0.0", reach_host="10.0.0.6")
    assert s.connect_host(remote) == "10.0.0.6"


def test_an_ssh_tunnel_needs_an_ssh_engine() -> None:
    ssh = DockerSettings.from_env({"L2CHAOS_DOCKER_REACH": "ssh"})
    assert ssh.connect_host(engine("ssh://me@build-box")) == "127.0.0.1"
    assert engine("ssh://me@build-box:2222").ssh_destination == "me@build-box"
    assert engine("ssh://me@build-box:2222").ssh_port == 2222
    with pytest.raises(StackError):
        ssh.connect_host(engine("tcp://10.0.0.5:2376"))
    with pytest.raises(StackError):
        DockerSettings(reach="ssh", bind="0.0.0.0").connect_host(engine("ssh://me@build-box"))
    with pytest.raises(UsageError):
        DockerSettings.from_env({"L2CHAOS_DOCKER_REACH": "carrier-pigeon"})


def test_a_local_engine_with_a_foreign_reach_host_is_refused() -> None:
    # a local engine publishes on this host: sending control traffic elsewhere is refused
    s = DockerSettings(reach_host=None, bind="192.0.2.10")
    with pytest.raises(SafetyError):
        s.connect_host(engine(DEFAULT_SOCKET))


# ------------------------------------------------------------------ names and owners


def test_docker_names_are_valid_and_carry_the_run_id() -> None:
    assert docker_name("20260119T042754Z-x-ab12") == "l2chaos-20260119T042754Z-x-ab12"
    assert docker_name("a b/c", "db") == "l2chaos-a-b-c-db"


def test_owner_labels_tell_live_from_dead_owners() -> None:
    me = _owner_label()
    assert me.split("|")[1] == str(os.getpid())
    assert _owner_alive(me) is True
    host = socket.gethostname()
    assert _owner_alive(f"{host}|{os.getpid()}|1") is False  # same pid, another start
    assert _owner_alive(f"{host}|4194304|1") is False  # beyond pid_max: gone
    assert _owner_alive("another-host|1|1") is None  # not ours to judge


def test_pg_handshake_reports_why_it_failed() -> None:
    from l2chaos.backends.readiness import pg_handshake

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, why = pg_handshake("127.0.0.1", port, "u", "d", timeout_s=1.0)
    assert ok is False
    assert "ConnectionRefused" in why
