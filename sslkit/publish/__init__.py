"""Publishing: trained backbones as folders plain timm loads (``sslkit publish``), and loading them back.

A published folder holds ``model.safetensors`` (timm state-dict keys), ``config.json`` (timm's hub
layout: ``architecture``, ``model_args``, ``pretrained_cfg``), ``README.md`` (model card),
``training_config.yaml``, ``eval/`` (result JSONs) and ``SHA256SUMS``. The names load on first use
(:func:`sslkit.faces.lazy_face`): ``sslkit publish --help`` imports no torch.
"""

from sslkit.faces import lazy_face

_EXPORTS = {
    **dict.fromkeys(("ChecksumError", "verify_sums", "write_sums"), "checksums"),
    **dict.fromkeys(("PublishOptions", "publish"), "folder"),
    **dict.fromkeys(("HubUnreachable", "PushError", "push_folder"), "hub"),
    "load_pretrained": "loading",
    "PublishError": "source",
}
__all__ = lazy_face(__name__, _EXPORTS)
