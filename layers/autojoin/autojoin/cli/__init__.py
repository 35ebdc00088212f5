"""The ``autojoin`` command. Each command module exposes ``register(app)``; main.py wires them."""
