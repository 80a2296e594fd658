"""Everything about a run's inputs that can be checked before its directory is made: the data
are there (found, extracted or downloaded), and the model can be built for them (timm installed,
pretrained weights cached, the user's factory returns a module with the right outputs)."""

from __future__ import annotations


def check_inputs(config):
    """Returns the config to record (an image folder's notes its file list); raises UserError,
    or UserCodeError when the user's own code raised."""
    from . import data, models

    config = data.preflight(config)
    models.preflight(config, lambda: data.sample_shape(config))
    return config
