"""SyncDesk's Qt-free services, one folder per role:

- ``core/``: what the product knows and decides, with no I/O (domain model, rules, timelines);
- ``io/``: talking to the three systems (HTTP layer, profiles, connectors, health probes);
- ``store/``: what is kept on disk (snapshot, exception history, audit log, migrations);
- ``actions/``: operator actions (plan, outbox, execute, verify, replay);
- ``demo/``: the built-in demo environment (servers, dataset, a real Tryton sandbox);
- ``engine.py`` (refresh: io -> store -> core), ``runner.py`` (the service thread's loop),
  ``compute.py`` (the CPU thread).
"""
