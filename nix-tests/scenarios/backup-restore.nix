# backup-restore: the scenario starts the backup service that the timer would start, so the
# server has scheduled backups on.
_: {
  server.services.bitpoll.backup.enable = true;
}
