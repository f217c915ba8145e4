"""``--push``: upload a published folder to the Hugging Face Hub with ``huggingface_hub``.

The folder is only read: whatever happens on the network, it stays complete on disk.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_CONNECTION_ERRORS = (ConnectionError, TimeoutError, socket.gaierror, socket.timeout)
# httpx / requests / huggingface_hub exception class names that mean "no connection", by name so that
# neither HTTP library has to be importable here.
_CONNECTION_NAMES = {
    "ConnectError", "ConnectTimeout", "ConnectionError", "Timeout", "ReadTimeout", "PoolTimeout",
    "NetworkError", "RemoteProtocolError", "ProxyError", "OfflineModeIsEnabled", "LocalEntryNotFoundError",
}


class HubUnreachable(ConnectionError):
    """The Hub could not be reached (no network, wrong ``HF_ENDPOINT``, offline mode)."""


class PushError(RuntimeError):
    """The Hub answered but refused the upload (authentication, permissions, repository name)."""


def is_connection_error(err: BaseException) -> bool:
    """Whether ``err`` or anything in its cause chain is a failed connection."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _CONNECTION_ERRORS) or type(current).__name__ in _CONNECTION_NAMES:
            return True
        current = current.__cause__ or current.__context__
    return False


def push_folder(
    folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
    endpoint: str | None = None, commit_message: str = "Upload sslkit model",
) -> str:
    """Create ``repo_id`` (if needed) and upload ``folder``; returns the repository URL.

    Args:
        folder: A complete published folder.
        repo_id: ``owner/name`` on the Hub.
        private: Create the repository private.
        token: Hub token (default: ``HF_TOKEN`` / the stored login).
        endpoint: Hub URL (default: ``HF_ENDPOINT`` at call time, else huggingface.co).

    Raises:
        HubUnreachable: no connection; the message says the folder is intact.
        PushError: the Hub refused (e.g. 401/403).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token, library_name="sslkit")
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=url.repo_id, folder_path=str(folder), commit_message=commit_message,
                          repo_type="model")
    except Exception as err:  # noqa: BLE001 - classified below
        if is_connection_error(err):
            raise HubUnreachable(f"could not reach the Hub: {err}; the folder {folder} is intact") from err
        raise PushError(f"the Hub refused the upload to {repo_id}: {err}; the folder {folder} is intact") from err
    return str(url)
