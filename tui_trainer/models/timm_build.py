"""`--model timm:NAME`: any of timm's models, when timm is installed (the optional extra
`pip install -e ".[timm]"`). timm builds it for the data's classes and channels itself."""

from __future__ import annotations

from ..errors import UserError
from .spec import TIMM_INSTALL, did_you_mean


def _timm():
    try:
        import timm
    except ImportError:
        raise UserError(f"--model timm:... needs timm, which is not installed; install it with `{TIMM_INSTALL}`") from None
    return timm


def check_name(name: str) -> None:
    timm = _timm()
    if not timm.is_model(name):
        raise UserError(f"unknown timm model '{name}'{did_you_mean(name, timm.list_models())}; "
                        "`python -c \"import timm; print(timm.list_models('*resnet*'))\"` lists them")


def build(name: str, input_shape: tuple[int, ...], num_classes: int, pretrained: bool = False):
    timm = _timm()
    check_name(name)
    kwargs = {"num_classes": num_classes}
    if len(input_shape) == 3:
        kwargs["in_chans"] = int(input_shape[0])
    if pretrained:
        kwargs.update(_hub_weights(name))
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a weights download (hub, network, cache) that failed
        if not pretrained:
            raise
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--pretrained: the timm weights of {name} could not be loaded ({detail}); timm fetches them "
                        "from the Hugging Face hub into its cache (HF_HOME, default ~/.cache/huggingface): run once "
                        "with a network, or train without --pretrained") from None


HUB_PROBE_SECONDS = 3.0


def _hub_weights(name: str) -> dict:
    """timm's own arguments for weights that live on the Hugging Face hub: the cached file when the
    hub cache has it (loaded from there, with no request at all), else nothing, once the hub is
    seen to answer. Offline, huggingface_hub retries each candidate file five times over ~25 s,
    printing a line per try, before timm gives up: one line at once instead."""
    try:
        from timm.models import get_pretrained_cfg
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:  # an older timm or no huggingface_hub: timm's own path
        return {}
    cfg = get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id or getattr(cfg, "file", None) or getattr(cfg, "state_dict", None):
        return {}
    cached = try_to_load_from_cache(hub_id, "model.safetensors", cache_dir=constants.HF_HUB_CACHE)
    if isinstance(cached, str):
        return {"pretrained_cfg_overlay": {"file": cached}}
    import os
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return {}  # reached through a proxy: a direct connection says nothing
    endpoint = urlsplit(getattr(constants, "ENDPOINT", "") or "https://huggingface.co")
    host = (endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443))
    try:
        if getattr(constants, "HF_HUB_OFFLINE", False):
            raise OSError("HF_HUB_OFFLINE is set")
        socket.create_connection(host, timeout=HUB_PROBE_SECONDS).close()
    except OSError as exc:
        raise UserError(f"--pretrained: the timm weights of {name} are not in the Hugging Face cache "
                        f"({constants.HF_HUB_CACHE}) and the hub cannot be reached ({exc.strerror or exc}); run once "
                        f"with a network (timm fetches {hub_id} into that cache), or train without --pretrained") from None
    return {}
