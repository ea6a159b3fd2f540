"""Drop-in modules for rangeio's three seeds: ``rangeio.compat.hctef``, ``.range_streams`` and
``.pyhaul`` (each loaded only when imported; ``import rangeio`` never loads them).

Each maps a seed's public names onto rangeio's own API and holds no logic of its own: what a
mapping needs lives in rangeio. docs/migrating.md lists, per library, every name, every
behaviour that differs on purpose, and the gaps.
"""
