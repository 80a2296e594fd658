"""Models by name: the built-in ones, every torchvision classification model, timm's (`timm:NAME`)
and the user's own factory (`path/to/file.py:factory`). Importing this package is cheap: torch,
torchvision and timm are imported only when a model is built.

Seams: `build_model(name, input_shape, num_classes)` builds one model; `build_for_run(config,
data)` builds the run's (what an experiment file's `build_model(cfg)` can replace);
`describe(config, input_shape)` is the name the run's header shows; `preflight` checks what can
be checked before anything is written.
"""

from __future__ import annotations

import math

from .spec import parse


def parameter_count(name: str, input_shape: tuple[int, ...], num_classes: int) -> int:
    """The number of parameters `build_model` would make, without torch (to refuse a model that
    cannot fit before anything is allocated); 0 when not known without building it."""
    if name == "mlp":
        widths = [math.prod(input_shape), 256, 128, num_classes]  # MLP's default hidden sizes
        return sum(a * b + b for a, b in zip(widths, widths[1:]))
    if name == "simplecnn":
        convs = [(input_shape[0], 64), (64, 128), (128, 256)]
        features = sum(i * o * 9 + o + 2 * o for i, o in convs)  # conv weights and bias, BatchNorm
        return features + 256 * 512 + 512 + 512 * num_classes + num_classes
    return 0


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, pretrained: bool = False):
    spec = parse(name)
    if spec.kind == "builtin":
        from .cnn import SimpleCNN
        from .mlp import MLP

        if spec.name == "simplecnn":
            return SimpleCNN(num_classes=num_classes, in_channels=input_shape[0])
        return MLP(in_features=math.prod(input_shape), num_classes=num_classes)
    if spec.kind == "torchvision":
        from .torchvision_build import build

        return build(spec.name, input_shape, num_classes, pretrained=pretrained)
    if spec.kind == "timm":
        from .timm_build import build

        return build(spec.name, input_shape, num_classes, pretrained=pretrained)
    from .factory import build

    return build(spec, input_shape, num_classes)


def build_for_run(config, data, emit=None):
    """The run's model for its data (a DataBundle): built, and for a timm or user model checked
    on one batch of zeros (UserError when its output does not fit the class count)."""
    kwargs = {"pretrained": True} if config.pretrained else {}
    model = build_model(config.model, data.input_shape, data.num_classes, **kwargs)
    spec = parse(config.model)
    if spec.kind in ("timm", "factory"):
        from .factory import check_output

        check_output(model, tuple(data.input_shape), data.num_classes, config.model)
    return model


def describe(config, input_shape: tuple[int, ...]) -> str:
    """The model as the header and the log name it: `resnet18 (small-input stem: ...)`."""
    spec = parse(config.model)
    if spec.kind == "torchvision" and len(input_shape) == 3:
        from .adapt_plan import plan

        return plan(spec.name, input_shape, config.pretrained).describe()
    if spec.kind == "timm" and config.pretrained:
        return f"{config.model} (pretrained)"
    return config.model


def preflight(config, data_shape) -> None:
    """What can be checked before the run directory is made (raises UserError, or UserCodeError
    for an exception in the user's factory): timm installed and the name known, the pretrained
    weights in torch's hub cache (downloaded if allowed), a factory that builds a module whose
    output fits the data. `data_shape()` returns (input_shape, num_classes); called only when needed."""
    spec = parse(config.model)
    if spec.kind == "timm":
        from .spec import check_timm_installed
        from .timm_build import check_name

        check_timm_installed(spec)
        check_name(spec.name)
    elif spec.kind == "torchvision":
        if config.pretrained:
            from .weights import ensure_weights

            ensure_weights(spec.name, config.download)
    elif spec.kind == "factory":
        from .factory import preflight as check_factory

        input_shape, num_classes = data_shape()
        check_factory(spec, tuple(input_shape), num_classes)
