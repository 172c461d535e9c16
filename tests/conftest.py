"""Test configuration. Its presence puts ``tests/`` on ``sys.path`` (pytest's prepend import mode), so test
modules in subfolders can import the shared helper modules here (``ir_graphs``, ``cli_support``)."""
