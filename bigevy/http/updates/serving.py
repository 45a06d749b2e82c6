"""An artifact upload: the request body streamed to the blob store, checked against what the
uploader declared, then described and signed. Nothing is kept of an upload that fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bigevy.errors import ValidationFailed
from bigevy.http.updates.protocol import ArtifactOut
from bigevy.updates.artifacts import Artifacts, check_upload
from bigevy.updates.blobs import CHUNK

run = asyncio.to_thread


class ArtifactUploads:
    def __init__(self, artifacts: Artifacts) -> None:
        self.artifacts = artifacts

    async def receive(
        self,
        body: AsyncIterator[bytes],
        kind: str,
        version: str,
        name: str,
        hardware: list[str],
        sha256: str | None,
        key_id: str | None,
    ) -> ArtifactOut:
        await run(self.artifacts.check_free, kind, version)  # before a 4 GB body, not after
        store = self.artifacts.store
        writer = await run(store.writer)
        try:
            pending = bytearray()
            async for chunk in body:
                pending += chunk
                if len(pending) >= CHUNK:  # one thread hop per MiB, not per socket read
                    await run(writer.write, bytes(pending))
                    pending.clear()
            if pending:
                await run(writer.write, bytes(pending))
            if writer.size == 0:
                raise ValidationFailed("the upload is empty: send the file as the body")
            blob = await run(writer.finish)
            check_upload(blob, sha256, None)
            await run(writer.commit)
        except BaseException:
            await run(writer.abort)
            raise
        try:
            return await run(self.artifacts.add, blob, kind, version, name, hardware, key_id)
        except BaseException:
            await run(self.artifacts.drop_unused, blob.sha256)
            raise
