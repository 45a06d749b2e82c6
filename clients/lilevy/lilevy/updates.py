"""Installing what bigEVY rolls out (a model, software, config), A/B, with a way back.

Each kind of artifact has two slots, `a` and `b`, under `<root>/<kind>/`; `state.json` says
which one runs. An update is downloaded (resumably) beside them, checked against bigEVY's
signature and the sha256 the signature covers, installed into the slot not running, and
switched to on trial: a self-test must pass before the switch is kept. If it fails, the node
switches back and reports the failure; if the node dies or hangs during the trial, the next
start finds the trial still open (`recover`) and switches back too, as an A/B bootloader does.

    updater = Updater(client, Path("/var/lib/lilevy/slots"), enrolment.signing_public_key,
                      hardware="rpi4", self_tests={"model": llama_self_test()})
    await updater.recover()                  # once at start
    await updater.follow(reply.directives)   # after each heartbeat
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lilevy.client import Directive, EdgeClient
from lilevy.errors import EdgeError
from lilevy.knowledge import PackageRejected, verify_signed
from lilevy.sync import _local_path, download

#: A self-test: given the installed file and its version, None when it works, else why not.
SelfTest = Callable[[Path, str], Awaitable[str | None]]
#: Free space kept beyond the artifact itself: the node's SMS queue and knowledge need room.
RESERVE_BYTES = 64 * 1024 * 1024
#: The one question a model answers in its self-test.
SELF_TEST_QUESTION = "How do I make oral rehydration solution?"
KINDS = ("model", "software", "config")


@dataclass(frozen=True)
class Outcome:
    rollout_id: str
    status: str  # what was reported: healthy | failed | rolled_back
    detail: str = ""


class Slots:
    """The two slots of one kind and which runs; every change is one atomic file write."""

    def __init__(self, root: Path, kind: str) -> None:
        self.dir = root / kind
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file = self.dir / "state.json"

    def read(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {"active": None, "slots": {}, "trial": None}
        return json.loads(self.state_file.read_text())

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self.state_file)  # a crash leaves the old state or the new, never half

    def active(self) -> tuple[str, Path] | None:
        """The version running and its file."""
        state = self.read()
        slot = state["active"]
        if slot is None:
            return None
        entry = state["slots"][slot]
        return entry["version"], self.dir / slot / entry["file"]

    def install(self, file: Path, version: str, name: str) -> str:
        """`file` moved into the slot not running; which slot that is."""
        state = self.read()
        slot = "b" if state["active"] == "a" else "a"
        target = self.dir / slot
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        os.replace(file, target / name)
        state["slots"][slot] = {"version": version, "file": name}
        self.write(state)
        return slot

    def switch(self, slot: str, rollout_id: str) -> None:
        """Run `slot` on trial; `keep` or `revert` ends the trial."""
        state = self.read()
        state["trial"] = {"slot": slot, "previous": state["active"], "rollout_id": rollout_id}
        state["active"] = slot
        self.write(state)

    def keep(self) -> None:
        state = self.read()
        state["trial"] = None
        self.write(state)

    def revert(self) -> str | None:
        """Back to the slot that ran before the last switch; the version now running."""
        state = self.read()
        trial = state["trial"]
        if trial is not None:
            state["active"] = trial["previous"]
        else:  # a kept install being rolled back: the other slot, if it holds anything
            other = "b" if state["active"] == "a" else "a"
            state["active"] = other if other in state["slots"] else None
        state["trial"] = None
        self.write(state)
        active = state["active"]
        return state["slots"][active]["version"] if active else None


class Updater:
    """Follows bigEVY's artifact directives for one node."""

    def __init__(
        self,
        client: EdgeClient,
        root: Path,
        public_key: str,
        *,
        hardware: str = "",
        self_tests: dict[str, SelfTest] | None = None,
        free_bytes: Callable[[], int] | None = None,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.client = client
        self.root = root
        self.public_key = public_key
        self.hardware = hardware
        self.self_tests = self_tests or {}
        self.free_bytes = free_bytes or (lambda: shutil.disk_usage(root).free)
        self.reserve_bytes = reserve_bytes
        self._busy = asyncio.Lock()  # one install at a time; a directive repeated meanwhile waits
        root.mkdir(parents=True, exist_ok=True)

    def slots(self, kind: str) -> Slots:
        return Slots(self.root, kind)

    def version(self, kind: str) -> str | None:
        active = self.slots(kind).active()
        return active[0] if active else None

    async def follow(self, directives: Iterable[Directive]) -> list[Outcome]:
        """Act on a heartbeat reply's artifact directives; what was reported."""
        outcomes = []
        for directive in directives:
            if directive.type == "artifact_update":
                outcome = await self.update(directive.detail)
            elif directive.type == "artifact_rollback":
                outcome = await self.rollback(directive.detail)
            else:
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def recover(self) -> list[Outcome]:
        """At start: a trial still open means the node did not come back from the switch."""
        outcomes = []
        for kind in KINDS:
            slots = self.slots(kind)
            trial = slots.read()["trial"] if slots.state_file.exists() else None
            if trial is None:
                continue
            tried = slots.read()["slots"][trial["slot"]]["version"]
            running = slots.revert()
            why = f"did not come back after switching to {tried}; running {running} again"
            outcomes.append(await self._report(trial["rollout_id"], "failed", why))
        return outcomes

    async def update(self, detail: dict[str, Any]) -> Outcome | None:
        async with self._busy:
            rollout_id = str(detail.get("rollout_id", ""))
            try:
                artifact = self._checked(detail)
            except PackageRejected as exc:
                return await self._report(rollout_id, "failed", exc.reason)
            kind, version = artifact["kind"], artifact["version"]
            if self.version(kind) == version:  # offered again after it was installed
                return await self._report(rollout_id, "healthy", f"runs {version}")
            incoming = self.root / "incoming"
            incoming.mkdir(exist_ok=True)
            part = incoming / f"{artifact['sha256']}.part"
            have = part.stat().st_size if part.exists() else 0
            need = artifact["size"] - have + self.reserve_bytes
            free = self.free_bytes()
            if free < need:
                why = f"not enough storage: needs {_mb(need)} MB free, has {_mb(free)} MB"
                return await self._report(rollout_id, "failed", why)
            await self._report(rollout_id, "downloading", f"{kind} {version}")
            try:
                await download(self.client, detail["download_url"], part, artifact["size"])
            except EdgeError as exc:
                if exc.transient:
                    return None  # the uplink: the part stays, the next offer resumes it
                part.unlink(missing_ok=True)
                return await self._report(rollout_id, "failed", f"download refused: {exc}")
            if part.stat().st_size < artifact["size"]:
                return None  # cut short: resumed at the next offer
            if (problem := _file_problem(part, artifact)) is not None:
                part.unlink(missing_ok=True)
                return await self._report(rollout_id, "failed", problem)
            return await self._install(rollout_id, artifact, part)

    async def _install(self, rollout_id: str, artifact: dict[str, Any], part: Path) -> Outcome:
        kind, version = artifact["kind"], artifact["version"]
        slots = self.slots(kind)
        slot = slots.install(part, version, _file_name(artifact))
        await self._report(rollout_id, "installed", f"{kind} {version} in slot {slot}")
        slots.switch(slot, rollout_id)
        test = self.self_tests.get(kind)
        try:
            problem = await test(slots.dir / slot / _file_name(artifact), version) if test else None
        except Exception as exc:  # a self-test that crashes is a failed one
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            running = slots.revert()
            why = f"self-test failed: {problem}"[:400] + f"; running {running} again"
            return await self._report(rollout_id, "failed", why)
        slots.keep()
        return await self._report(rollout_id, "healthy", f"runs {version}")

    async def rollback(self, detail: dict[str, Any]) -> Outcome:
        """Back to what ran before the rollout's version (nothing to do if it never ran)."""
        async with self._busy:
            rollout_id = str(detail.get("rollout_id", ""))
            kind, version = str(detail.get("kind", "")), str(detail.get("version", ""))
            if kind not in KINDS:
                return await self._report(rollout_id, "failed", f"unknown kind {kind!r}")
            if self.version(kind) != version:
                return await self._report(rollout_id, "rolled_back", f"{version} not running")
            running = self.slots(kind).revert()
            return await self._report(rollout_id, "rolled_back", f"running {running}")

    def _checked(self, detail: dict[str, Any]) -> dict[str, Any]:
        """The signed description, verified, and fit for this node."""
        signed = detail.get("artifact") or {}
        artifact = verify_signed(
            str(signed.get("signed", "")),
            str(signed.get("signature", "")),
            self.public_key,
            "artifact",
        )
        if artifact.get("format") != "bigevy-artifact/1" or artifact.get("kind") not in KINDS:
            raise PackageRejected(f"not an artifact this node knows: {artifact.get('format')}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(artifact.get("sha256"))):
            raise PackageRejected("the artifact's sha256 is not a hex digest")
        if not isinstance(artifact.get("size"), int) or artifact["size"] < 0:
            raise PackageRejected("the artifact's size is not a number of bytes")
        if not _local_path(detail.get("download_url")):
            raise PackageRejected(f"refused download URL {detail.get('download_url')!r}")
        if artifact["hardware"] and self.hardware not in artifact["hardware"]:
            raise PackageRejected(f"built for {', '.join(artifact['hardware'])}, not this node")
        return artifact

    async def _report(self, rollout_id: str, status: str, detail: str) -> Outcome:
        """Tell bigEVY. A report lost on the uplink is made again: until bigEVY hears the end
        of an install, it offers the artifact again, and the node answers from its slots."""
        with contextlib.suppress(EdgeError):
            await self.client.request(
                "POST",
                f"/v1/rollouts/{rollout_id}/report",
                json={"status": status, "detail": detail[:500]},
                kind="update",
            )
        return Outcome(rollout_id, status, detail)


def llama_self_test(question: str = SELF_TEST_QUESTION, max_tokens: int = 24) -> SelfTest:
    """A model's self-test: load it with llama.cpp (on the node, not a dependency of this
    package) and answer one fixed question with some words."""

    async def test(path: Path, version: str) -> str | None:
        def answer() -> str:
            from llama_cpp import Llama

            model = Llama(model_path=str(path), n_ctx=512, verbose=False)
            try:
                reply = model.create_chat_completion(
                    [{"role": "user", "content": question}], max_tokens=max_tokens
                )
            finally:
                model.close()
            return reply["choices"][0]["message"]["content"] or ""

        text = await asyncio.to_thread(answer)
        return None if len(text.split()) >= 2 else f"model {version} answered {text!r}"

    return test


def _file_problem(path: Path, artifact: dict[str, Any]) -> str | None:
    size, digest = 0, hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            size += len(chunk)
            digest.update(chunk)
    if size != artifact["size"]:
        return f"download has {size} bytes, the signed size is {artifact['size']}"
    if digest.hexdigest() != artifact["sha256"]:
        return f"sha256 {digest.hexdigest()[:12]}… does not match the signed one"
    return None


def _file_name(artifact: dict[str, Any]) -> str:
    """The artifact's name, safe as a file name (it comes from an operator's upload)."""
    name = Path(str(artifact.get("name") or "")).name
    return name if name and name not in (".", "..") else f"{artifact['kind']}.bin"


def _mb(n: int) -> int:
    return round(n / 1024 / 1024)
