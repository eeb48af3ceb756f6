"""Generic actions for stacks that offer no hook for what you need: call an HTTP
endpoint of a service (`http.call`), or run a command on this host (`exec.command`).
Both can undo themselves at heal with a second call or command."""

from __future__ import annotations

import os
import subprocess
from abc import abstractmethod
from collections.abc import Mapping
from typing import Literal, TypeVar

import httpx
from l2chaos.errors import FaultError
from l2chaos.params import Duration, JsonValue, param, params, required

from .base import Details, Fault, FaultContext, TargetKind, Window

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


@params
class HttpCallParams:
    path: str = required("path to call at inject, e.g. /admin/flush")
    method: Method = param("POST", "HTTP method")
    body: Mapping[str, JsonValue] = param({}, "JSON body")
    heal_path: str = param("", "path to call at heal (empty: none)")
    heal_method: Method = param("POST", "HTTP method at heal")
    heal_body: Mapping[str, JsonValue] = param({}, "JSON body at heal")
    auth: bool = param(True, "send Authorization: Bearer <admin token>")
    timeout: Duration = param(Duration.of(s=10), "request timeout")


AP = TypeVar("AP")


class _ActionFault(Fault[AP]):
    """An action at inject and, when the scenario gives one, another at heal."""

    window = Window.OPTIONAL

    @abstractmethod
    def perform(self, ctx: FaultContext, heal: bool) -> Details | None:
        """Do the inject's action, or the heal's; None: the scenario gave no heal action."""

    def inject(self, ctx: FaultContext) -> Details:
        return self.perform(ctx, heal=False) or {}

    def heal(self, ctx: FaultContext) -> Details:
        return self.perform(ctx, heal=True) or {}


class HttpCall(_ActionFault[HttpCallParams]):
    name = "http.call"
    summary = (
        "Calls an HTTP endpoint of the target service directly (with the run's admin token), "
        "and optionally another one at heal."
    )
    target_kind = TargetKind.SERVICE

    def validate(self, services: set[str], links: set[str]) -> str | None:
        for key, value in (("path", self.p.path), ("heal_path", self.p.heal_path)):
            if value and not value.startswith("/"):
                return f"with.{key}: expected a path starting with '/', got {value!r}"
        return None

    def _call(
        self, ctx: FaultContext, method: str, path: str, body: Mapping[str, JsonValue]
    ) -> Details:
        service = self.target.services[0]
        url = ctx.stack.direct_url(service, path)
        headers = {"Authorization": f"Bearer {ctx.stack.admin_token}"} if self.p.auth else {}
        try:
            resp = httpx.request(
                method,
                url,
                json=dict(body) if method != "GET" else None,
                headers=headers,
                timeout=self.p.timeout.seconds,
            )
        except httpx.HTTPError as exc:
            raise FaultError(f"http.call {method} {url} failed: {exc}") from exc
        if resp.status_code >= 400:
            raise FaultError(
                f"http.call {method} {url} answered {resp.status_code}: {resp.text[:300]}"
            )
        return {
            "url": url,
            "method": method,
            "status": resp.status_code,
            "answer": resp.text[:1000],
        }

    def perform(self, ctx: FaultContext, heal: bool) -> Details | None:
        p = self.p
        if not heal:
            return self._call(ctx, p.method, p.path, p.body)
        return self._call(ctx, p.heal_method, p.heal_path, p.heal_body) if p.heal_path else None


@params
class ExecCommandParams:
    command: tuple[str, ...] = required("argv to run at inject")
    heal_command: tuple[str, ...] = param((), "argv to run at heal (empty: none)")
    timeout: Duration = param(Duration.of(s=60), "how long a command may run")


class ExecCommand(_ActionFault[ExecCommandParams]):
    name = "exec.command"
    summary = (
        "Runs a command on this host (e.g. a script that breaks something of your own stack), "
        "and optionally another at heal. The environment carries L2CHAOS_RUN_ID, "
        "L2CHAOS_RUN_DIR and L2CHAOS_DIRECT_<SERVICE>=host:port."
    )
    target_kind = TargetKind.NONE
    runs_commands = True

    def validate(self, services: set[str], links: set[str]) -> str | None:
        if not self.p.command:
            return "with.command: expected a non-empty list such as [./break-it.sh, --hard]"
        return None

    def _env(self, ctx: FaultContext) -> dict[str, str]:
        env = dict(os.environ)
        env["L2CHAOS_RUN_ID"] = ctx.stack.run_id
        env["L2CHAOS_RUN_DIR"] = str(ctx.stack.run_dir)
        for service in ctx.stack.services:
            key = "L2CHAOS_DIRECT_" + service.upper().replace("-", "_")
            env[key] = ctx.stack.direct_endpoint(service).hostport
        return env

    def _run(self, ctx: FaultContext, argv: list[str]) -> Details:
        try:
            done = subprocess.run(
                argv,
                env=self._env(ctx),
                capture_output=True,
                text=True,
                timeout=self.p.timeout.seconds,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FaultError(f"exec.command {argv!r} failed: {exc}") from exc
        if done.returncode != 0:
            raise FaultError(
                f"exec.command {argv!r} exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}"
            )
        return {"argv": list(argv), "exit": done.returncode, "stdout": done.stdout[-1000:]}

    def perform(self, ctx: FaultContext, heal: bool) -> Details | None:
        if not heal:
            return self._run(ctx, list(self.p.command))
        return self._run(ctx, list(self.p.heal_command)) if self.p.heal_command else None
