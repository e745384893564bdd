# PostgreSQL: the connection settings and, with createLocally, the database and role on this
# machine's server. SQLite needs nothing here: the package keeps it in the state directory.
{
  config,
  lib,
  ...
}:
let
  inherit (lib) mkDefault mkIf mkMerge;
  cfg = config.services.bitpoll;
  db = cfg.database;
in
{
  config = mkIf (cfg.enable && db.type == "postgresql") (mkMerge [
    {
      # The password is no setting: the package reads it from the db_password credential.
      services.bitpoll.settings.DATABASES = mkDefault {
        default = {
          ENGINE = "django.db.backends.postgresql";
          NAME = db.name;
          USER = db.user;
          HOST = if db.host == null then "/run/postgresql" else db.host;
          PORT = toString db.port;
        };
      };
    }
    (mkIf db.createLocally {
      # Peer authentication over the local socket: the service user connects as the role of
      # the same name, which owns the database of the same name. No password exists.
      services.postgresql = {
        enable = true;
        ensureDatabases = [ db.name ];
        ensureUsers = [
          {
            name = db.user;
            ensureDBOwnership = true;
          }
        ];
      };
    })
  ]);
}
