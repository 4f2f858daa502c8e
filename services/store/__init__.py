"""What SyncDesk keeps on disk: the snapshot and its codec, the exception history, the
audit log, SYNCDESK_HOME and the schema migrations."""
