"""Publishing: trained backbones as folders plain timm loads (``sslkit publish``), and loading them back.

A published folder holds ``model.safetensors`` (timm state-dict keys), ``config.json`` (timm's hub
layout: ``architecture``, ``model_args``, ``pretrained_cfg``), ``README.md`` (model card),
``training_config.yaml``, ``eval/`` (result JSONs) and ``SHA256SUMS``.
"""

from sslkit.publish.checksums import ChecksumError, verify_sums, write_sums
from sslkit.publish.folder import PublishOptions, publish
from sslkit.publish.hub import HubUnreachable, PushError, push_folder
from sslkit.publish.loading import load_pretrained
from sslkit.publish.source import PublishError

__all__ = [
    "ChecksumError",
    "HubUnreachable",
    "PublishError",
    "PublishOptions",
    "PushError",
    "load_pretrained",
    "publish",
    "push_folder",
    "verify_sums",
    "write_sums",
]
