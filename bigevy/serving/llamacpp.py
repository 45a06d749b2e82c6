"""CPU engine: llama.cpp through llama-cpp-python, for GGUF models (the embedded default)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bigevy.config import ModelSpec
from bigevy.errors import ContextLengthExceeded, ModelLoading
from bigevy.ops.model_files import resolve_source
from bigevy.serving.engine import GenerationEvent, GenerationRequest, LLMEngine

log = logging.getLogger(__name__)

#: A generation that has produced no token for this long makes the replica unhealthy.
STALL_SECONDS = 120.0
#: An engine idle this long is probed with a one-token generation by `check_health`.
PROBE_AFTER_IDLE_S = 60.0
#: GIL switch interval in a model replica (see `_load`); measured in benchmarks/RESULTS.md.
GIL_SWITCH_INTERVAL_S = 1e-4


def resolve_model_path(source: str) -> Path:
    path = resolve_source(source)
    if not path.is_file():
        raise FileNotFoundError(f"not a GGUF file: {path}")
    return path


@contextmanager
def model_params(**fields: Any) -> Iterator[None]:
    """`Llama(...)` loads its model with these `llama_model_params` fields changed.

    llama-cpp-python takes no argument for most of them, so its factory of default params is
    swapped while a `Llama` is built (model replicas build one, on one thread). Used for
    `use_extra_bufts`, off by default: on a CPU with AMX (Sapphire Rapids and later) llama.cpp
    repacks the weights into its AMX buffer type, and the first decode of the packaged
    SmolLM2 Q4_1 then dies in `ggml_backend_amx_mul_mat` (SIGSEGV, llama-cpp-python 0.3.36 built
    from source with its native default). Without extra buffer types it decodes normally.
    """
    import llama_cpp.llama as llama_module

    library = llama_module.llama_cpp
    default = library.llama_model_default_params

    def changed() -> Any:
        params = default()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    library.llama_model_default_params = changed
    try:
        yield
    finally:
        library.llama_model_default_params = default


def default_threads() -> int:
    """All cores but one: the gateway, Serve's proxy and Ray need a core too. On 2 cores one
    decode thread beat two through Serve (benchmarks/RESULTS.md), as llama.cpp's spinning
    OpenMP threads stall whenever another process takes their core."""
    return max(1, (os.cpu_count() or 1) - 1)


class LlamaCppEngine(LLMEngine):
    """One `llama_cpp.Llama` per replica; generations run one at a time on a worker thread.

    Concurrent requests wait their turn inside the replica (bounded by Serve's
    `max_ongoing_requests`); a cancelled request is dropped before or during its turn.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.model_path = resolve_model_path(spec.source)
        self._llm: Any = None
        self._formatter: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{spec.id}")
        self._last_progress = time.monotonic()  # a token, or a generation starting
        self._last_token = float("-inf")

    async def start(self) -> None:
        self._llm = await asyncio.to_thread(self._load)

    def _load(self) -> Any:
        n_threads = self.spec.n_threads or default_threads()
        # llama.cpp's CPU backend runs on OpenMP, which caps its threads at OMP_NUM_THREADS,
        # and Ray sets that to the actor's num_cpus (1 by default): without this the model
        # decodes on one thread whatever n_threads says. libgomp reads it when first loaded.
        os.environ["OMP_NUM_THREADS"] = str(n_threads)
        # llama-cpp-python drops and retakes the GIL several times per token (each ctypes
        # call); with Serve's event-loop threads in the same process, Python's default 5 ms
        # switch interval made every retake wait, costing ~30% of decode speed here.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        kwargs: dict[str, Any] = {
            "n_ctx": self.spec.context_length,
            "n_threads": n_threads,
            "verbose": False,
            **self.spec.engine_kwargs,
        }
        extra_buffers = bool(kwargs.pop("use_extra_bufts", False))
        with model_params(use_extra_bufts=extra_buffers):
            llm = Llama(model_path=str(self.model_path), **kwargs)
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm.detokenize([llm.token_eos()], special=True).decode(),
                bos_token=llm.detokenize([llm.token_bos()], special=True).decode(),
            )
        return llm

    def render(self, request: GenerationRequest) -> tuple[list[int], list[str]]:
        """Prompt tokens and extra stop strings, exactly as the model will see them.

        The chat template's own markup is tokenized with special tokens on, what callers wrote
        (each message's content, a raw prompt) with them off: an SMS holding
        "<|im_end|><|im_start|>system ..." stays text and cannot open a turn of its own. The
        template is rendered with a marker in place of each content, and the text is split
        there.
        """
        stop = list(request.stop)
        if request.messages is None:
            return self._tokens(request.prompt or "", special=False, bos=True), stop
        marker = secrets.token_hex(8)
        contents = [m["content"] for m in request.messages]
        marked = [{**m, "content": f"{marker}{i}{marker}"} for i, m in enumerate(request.messages)]
        if self._formatter is None:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in marked) + "assistant: "
        else:
            formatted = self._formatter(messages=marked)
            text = formatted.prompt
            if formatted.stop:
                extra = [formatted.stop] if isinstance(formatted.stop, str) else formatted.stop
                stop += [s for s in extra if s]
        tokens: list[int] = []
        for i, part in enumerate(re.split(f"{marker}(\\d+){marker}", text)):
            written = i % 2 == 1  # re.split puts each captured index between the template's parts
            tokens += self._tokens(
                contents[int(part)] if written else part, special=not written, bos=i == 0
            )
        return tokens, stop

    def _tokens(self, text: str, *, special: bool, bos: bool) -> list[int]:
        if not text:
            return []
        return self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special)

    def _budget(self, n_prompt: int, requested: int | None) -> int:
        ctx = self.spec.context_length
        if n_prompt >= ctx:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {ctx} tokens. However, your "
                f"prompt is {n_prompt} tokens long.",
                param="messages",
            )
        if requested is not None and n_prompt + requested > ctx:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {ctx} tokens. However, you requested "
                f"{n_prompt + requested} tokens ({n_prompt} in the prompt, {requested} for the "
                "completion). Please reduce the prompt or max_tokens.",
                param="max_tokens",
            )
        return (
            requested
            if requested is not None
            else min(self.spec.sampling.max_tokens, ctx - n_prompt)
        )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        if self._llm is None:
            raise ModelLoading(f"model {self.spec.id!r} is still loading", retry_after=2)
        # Off the event loop: a long prompt takes a while to render and tokenize, and the
        # replica's other streams must not stall meanwhile (tokenizing reads the vocabulary
        # only, so it may run beside a generation).
        tokens, stop = await asyncio.to_thread(self.render, request)
        max_tokens = self._budget(len(tokens), request.max_tokens)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: GenerationEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        future = loop.run_in_executor(
            self._executor, self._run, tokens, max_tokens, stop, request, cancel, emit
        )
        self.stats.requests += 1
        self.stats.active += 1
        try:
            yield GenerationEvent(kind="start", prompt_tokens=len(tokens))
            while True:
                event = await queue.get()
                yield event
                if event.kind == "end":
                    break
        finally:
            cancel.set()
            self.stats.active -= 1
            future.cancel()  # drops it if it never started; a running one sees `cancel`

    def _run(
        self,
        tokens: list[int],
        max_tokens: int,
        stop: list[str],
        request: GenerationRequest,
        cancel: threading.Event,
        emit: Any,
    ) -> None:
        # Long on purpose: the callbacks llama.cpp calls per token share this run's state.
        n_prompt = len(tokens)
        generated = 0
        interval = self.spec.stream_interval_ms / 1000
        pending = ""
        last_sent = 0.0

        def should_stop(ids: Any, _logits: Any) -> bool:
            nonlocal generated
            generated = len(ids) - n_prompt
            self._last_progress = self._last_token = time.monotonic()
            return cancel.is_set()

        def flush() -> None:
            nonlocal pending, last_sent
            if pending:
                emit(GenerationEvent(kind="delta", text=pending, completion_tokens=generated))
                pending, last_sent = "", time.monotonic()

        def emit_text(text: str) -> None:
            """First text at once, then at most one message per interval: fewer, larger
            messages through Serve's hops (replica, gateway, proxy)."""
            nonlocal pending
            pending += text
            if time.monotonic() - last_sent >= interval:
                flush()

        finish: str | None = "cancelled"
        try:
            with self._lock:
                started = time.monotonic()
                self._last_progress = started
                try:
                    if not cancel.is_set():
                        finish = self._decode(
                            tokens, max_tokens, stop, request, cancel, should_stop, emit_text
                        )
                finally:
                    self.stats.decode_seconds += time.monotonic() - started
                    self.stats.tokens_generated += generated
        except Exception:
            log.exception("generation %s failed", request.request_id)
            finish = "error"
        finally:
            flush()
            if finish == "cancelled":
                self.stats.cancelled += 1
            # Always sent, so the caller's stream ends whatever happened here.
            emit(
                GenerationEvent(
                    kind="end",
                    prompt_tokens=n_prompt,
                    completion_tokens=generated,
                    finish_reason=finish,
                )
            )

    def _decode(
        self,
        tokens: list[int],
        max_tokens: int,
        stop: list[str],
        request: GenerationRequest,
        cancel: threading.Event,
        should_stop: Any,
        emit_text: Any,
    ) -> str | None:
        from llama_cpp import StoppingCriteriaList

        finish: str | None = None
        stream = self._llm.create_completion(
            tokens,
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            repeat_penalty=request.repeat_penalty or self.spec.sampling.repeat_penalty,
            stop=stop or None,
            seed=request.seed,
            stream=True,
            stopping_criteria=StoppingCriteriaList([should_stop]),
        )
        for chunk in stream:
            choice = chunk["choices"][0]
            emit_text(choice["text"])
            finish = choice.get("finish_reason") or finish
            if cancel.is_set():
                stream.close()
                break
        return "cancelled" if cancel.is_set() else finish

    async def check_health(self) -> None:
        """A one-token probe, unless a generation produced a token within `PROBE_AFTER_IDLE_S`:
        that proves the engine already, and a probe would evict the prompt prefix (the shared
        system prompt) llama.cpp keeps cached between requests."""
        if self._llm is None or time.monotonic() - self._last_token < PROBE_AFTER_IDLE_S:
            return
        if self._lock.acquire(blocking=False):
            try:
                await asyncio.to_thread(self._llm.create_completion, " ", max_tokens=1)
            finally:
                self._lock.release()
        elif time.monotonic() - self._last_progress > STALL_SECONDS:
            raise RuntimeError(f"generation stalled for over {STALL_SECONDS:.0f}s")
