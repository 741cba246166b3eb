"""Adapters that plug the InfoCLIP losses into third-party segmentation frameworks.

Each adapter lives in its own submodule and imports its framework lazily (``import infoclip`` never
imports one): ``infoclip.integrations.mmseg`` for mmsegmentation.
"""
