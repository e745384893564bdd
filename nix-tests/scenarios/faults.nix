# faults: the scenario starts the backup service (it mounts its own small file system over the
# backup directory to fill it), so the server has scheduled backups on.
_: {
  server.services.bitpoll.backup.enable = true;
}
