"""SyncDesk's Qt-free core: domain model, connectors, storage, reconciliation, actions, audit."""
