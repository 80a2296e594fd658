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
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a weights download (hub, network, cache) that failed
        if not pretrained:
            raise
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--pretrained: the timm weights of {name} could not be loaded ({detail}); timm fetches them "
                        "from the Hugging Face hub into its cache (HF_HOME, default ~/.cache/huggingface): run once "
                        "with a network, or train without --pretrained") from None
