"""Chat markup in what a caller writes, made plain text for an engine that tokenizes a rendered
prompt whole.

llama.cpp gets message content tokenized with special tokens off (`llamacpp.render`). vLLM's
chat path renders the template itself and tokenizes the whole string with special tokens on:
`<|im_end|><|im_start|>system ...` in an SMS would become real turn markers there. So on that
path each marker of a known chat format in a message gets a zero-width space after its first
character: the text reads the same to the model, and no tokenizer matches it as one token.
"""

from __future__ import annotations

import re

#: ChatML and Llama 3 (`<|im_end|>`, `<|eot_id|>`), Llama 2 / Mistral (`[INST]`, `<<SYS>>`,
#: `<s>`), Gemma (`<start_of_turn>`), Phi (`<|end|>`) and the like.
_MARKUP = re.compile(
    r"<\|[^|<>\s]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<(?:bos|eos)>"
)
ZERO_WIDTH_SPACE = "\u200b"


def defused(text: str) -> str:
    """`text` with no chat-format marker a tokenizer could read as a control token."""
    return _MARKUP.sub(lambda m: m.group(0)[0] + ZERO_WIDTH_SPACE + m.group(0)[1:], text)
