"""Policy rules for this project, usable offline and by the CrossGuard pack.

``policy.rules`` holds the rules as plain functions, ``policy.waivers`` the
documented exceptions. Nothing here imports ``pulumi_policy``: constructing its
``PolicyPack`` starts a gRPC server, so the pack is built only in
``policy/__main__.py``, which the Pulumi CLI runs (FIELD-NOTES 23).
"""
