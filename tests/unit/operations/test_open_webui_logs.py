"""Open WebUI's known failures: lines as the real Open WebUI 0.11 logged them in the sandbox."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.operations.open_webui_logs import (
    open_webui_failures,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_logs import known_failures

# Open WebUI 0.11 started with OFFLINE_MODE=true and no cached embedding model (abridged).
OFFLINE_START = """\
2026-11-29 09:59:17.998 | ERROR    | open_webui.routers.retrieval:get_ef:160 - Error loading \
SentenceTransformer: Cannot find an appropriate cached snapshot folder for the specified \
revision on the local disk and outgoing traffic has been disabled.
huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder
2026-11-29 09:59:18.005 | INFO     | open_webui.utils.auth:create_admin_user:539 - Creating admin \
account from environment variables: admin@example.com
"""
# Its model list read from a base URL with a wrong path (TGI answers 404 without a body): the
# line the real Open WebUI logged in the sandbox with OPENAI_API_BASE_URL=http://tgi:3333/api.
WRONG_PATH = (
    "2026-11-29 10:00:35.394 | ERROR    | open_webui.routers.openai:send_get_request:119 - "
    "Connection error: 404, message='Attempt to decode JSON with unexpected mimetype: ', "
    "url='http://tgi:3333/api/models'"
)


def test_an_offline_start_is_the_missing_embedding_model_not_a_tgi_download():
    (failure,) = open_webui_failures(OFFLINE_START)
    assert failure["kind"] == "embedding-model-missing"
    assert "Chatting with TGI is not affected" in failure["cause"]
    assert "open_webui_offline" in failure["fix"]
    # TGI's catalogue reads the same lines as a failed weights download: the wrong diagnosis
    # logs.yml gave before it chose the catalogue by application.
    assert [f["kind"] for f in known_failures(OFFLINE_START)] == ["download-failed"]


def test_a_model_list_that_cannot_be_read_points_at_tgi_and_the_base_url():
    (failure,) = open_webui_failures([WRONG_PATH])
    assert failure["kind"] == "tgi-unreachable"
    assert "open_webui_tgi_service_port" in failure["fix"]
    assert failure["line"].endswith("url='http://tgi:3333/api/models'")


def test_a_healthy_start_has_no_failure():
    healthy = OFFLINE_START.splitlines()[2:]
    assert open_webui_failures(healthy) == []
