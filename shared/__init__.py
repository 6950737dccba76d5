"""What every layer of the multi-region RDS failover project shares.

- ``config``: typed, validated settings per layer (read once, before any resource).
- ``project_files``: the config keys each layer's Pulumi.yaml declares (all it accepts).
- ``naming``: physical and logical names carrying the environment suffix.
- ``tags``: the one tag set, applied as provider default tags.
- ``providers``: one explicit AWS provider per region.
- ``contract``: the output names exchanged between layers and stack references.
"""
