"""Command-line interface. Each module here that defines ``register(subparsers)``
becomes a sub-command of ``nocollapse``; ``main`` discovers them."""
