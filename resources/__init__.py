"""SyncDesk's static files, shipped as package data: the demo company's seed parameters
(``demo_seed.toml``, read by ``services/demo/generator/seed.py`` through
:mod:`importlib.resources`) and, as they come, icons and style sheets.

No code lives here. ``screenshots/`` holds the README's pictures and is not packaged.
"""
