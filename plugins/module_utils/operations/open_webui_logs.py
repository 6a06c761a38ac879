# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What Open WebUI's log says went wrong, with the fix in this collection's terms.

Open WebUI (0.11) logs through loguru, `<time> | LEVEL | module:function:line - message`, plus
Python tracebacks as plain lines. Read with the same line reader as TGI's log
(tgi_logs.known_failures); only the catalogue differs. Pure logic: no Ansible, no network.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_logs import (
    catalogue_entry,
    known_failures,
)

FAILURES = (
    catalogue_entry(
        "embedding-model-missing",
        r"Error loading SentenceTransformer|Cannot determine model snapshot path",
        "Open WebUI could not load its embedding model for document search: it is not in the "
        "data volume's cache and it could not (or, with open_webui_offline: true, must not) be "
        "downloaded. Chatting with TGI is not affected",
        "with internet access set open_webui_offline: false; offline, put the model "
        "(sentence-transformers/all-MiniLM-L6-v2) into the volume's Hugging Face cache or name "
        "an embedding engine in open_webui_extra_env (RAG_EMBEDDING_ENGINE)",
    ),
    catalogue_entry(
        "tgi-unreachable",
        r"\bConnection error: ",
        "Open WebUI could not list TGI's models at its base URL: TGI is not ready, or the "
        "service name, port or path is wrong; the chat then offers no model",
        "check TGI with ansible-playbook haw.icc.status -l <namespace>; the URL is "
        "http://<open_webui_tgi_service>:<open_webui_tgi_service_port>/v1, as deploy.yml sets it",
    ),
)


def open_webui_failures(lines: str | Iterable[str]) -> list[dict[str, str]]:
    """The known failures in Open WebUI's log, each once, in order of appearance."""
    return known_failures(lines, FAILURES)
