# postgresql: Bitpoll's data in a PostgreSQL server on the same machine, created by the module
# (database and role, peer authentication over the unix socket); the scenario backs it up with
# the backup service, so scheduled backups are on.
_: {
  server.services.bitpoll = {
    database = {
      type = "postgresql";
      createLocally = true;
    };
    backup.enable = true;
  };
}
